-- Which embeddings model each stored vector came from (`kind` or `kind:model`), so that a change
-- of the organization's embeddings model re-embeds in the background what the old one made. A
-- knowledge base's `embedding_kind` is the model its chunks should have; its progress is the
-- share of chunks that have it.
ALTER TABLE knowledge_chunks ADD COLUMN embedding_model text NOT NULL DEFAULT 'minilm';
ALTER TABLE memory_episodes ADD COLUMN embedding_model text NOT NULL DEFAULT 'minilm';
CREATE INDEX knowledge_chunks_model ON knowledge_chunks (org_id, embedding_model);
CREATE INDEX memory_episodes_model ON memory_episodes (org_id, embedding_model);
