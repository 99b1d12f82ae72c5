"""The small ONNX models a call process runs itself (Silero VAD, the end-of-turn model): one
onnxruntime session per model per process, shared by every call in it, set up to hold as
little memory as the model needs.

    session = lean_session(path)          # one intra/inter-op thread, no memory arena
    return_large_buffers_to_os()          # once per process, before the models run
    release_freed_memory()                # after a run / a call: free heap pages to the OS

Measured in a call actor's process (bench/call_memory.py): with onnxruntime's CPU memory
arena and memory pattern, every buffer a run ever needed stays reserved, and glibc keeps the
freed activations of the end-of-turn model (≈30 MiB for one 8 s window) on its heap for good.
Without them, with large buffers taken from and given back to the OS directly, and the heaps
trimmed after each run, the process stays flat over calls; the VAD stays at a fraction of a
millisecond per 32 ms window.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from pathlib import Path
from typing import Any

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
# Buffers of at least this size are mmap'ed and unmapped when freed. Below ≈1 MiB the
# page faults of re-mapping the encoder's activations on every run cost more than they save.
LARGE_BUFFER_BYTES = 1 << 20

_tuned = False
_tune_lock = threading.Lock()
_libc: Any = None


def _glibc() -> Any:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            _libc = libc if libc is not None and hasattr(libc, "malloc_trim") else False
        except OSError:
            _libc = False
    return _libc


def lean_session(path: str | Path) -> Any:
    """An onnxruntime CPU session with one thread each way (calls share the process's cores)
    and no arena: memory a run needed is given back when the run ends."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = False
    return onnxruntime.InferenceSession(str(path), sess_options=opts,
                                        providers=["CPUExecutionProvider"])


def return_large_buffers_to_os() -> bool:
    """Make glibc hand large freed buffers back to the OS at once (a fixed mmap threshold
    instead of its default, which grows until such buffers stay on the heap). Process-wide,
    so it is called by the process that owns the models (the call actor), once. Returns
    whether the allocator took the setting (False off glibc)."""
    global _tuned
    with _tune_lock:
        if _tuned:
            return True
        libc = _glibc()
        if not libc:  # not glibc (musl, macOS): leave the allocator as it is
            return False
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))
        return _tuned


def release_freed_memory() -> None:
    """Hand the free pages inside the heaps of every thread back to the OS (glibc's
    `malloc_trim`, ≈3 ms). After each end-of-turn verdict and each call: without it the
    smaller buffers of the runs, freed on whichever thread ran them, stay with the process
    and it grows by a few MiB per call (bench/call_memory.py: 156 → 134 MiB after 10 calls)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)

