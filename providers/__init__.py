"""Provider interfaces (stt, tts, llm, embeddings), the registry, resolution and providers.

Sessions obtain providers through `providers.runtime` (`open_stt`, `open_llm`, ...)."""
