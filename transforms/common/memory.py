"""Giving freed memory back to the OS between units of work. torch's activation buffers of varying sizes
fragment glibc's heap: freed, they stay in the process (measured: MiniLM over 4,096 texts leaves ~300 MB
resident), so each later chunk and stage of a one-process run would grow the peak further."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc

import pyarrow as pa

_LIBC = ctypes.util.find_library("c")
_TRIM = getattr(ctypes.CDLL(_LIBC), "malloc_trim", None) if _LIBC else None  # glibc only


def release_memory() -> None:
    """Collects garbage, returns Arrow's unused pool memory and glibc's free heap pages."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
