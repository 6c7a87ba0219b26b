"""Process-wide inference settings: thread counts and the C allocator, chosen once per process.

On glibc, every large tensor a CNN allocates is by default ``mmap``-ed and returned to the kernel when
freed, so each layer of each batch page-faults fresh zeroed memory: the forward pass then spends more
time in the kernel (``sys``) than computing. Raising the mmap and trim thresholds keeps those blocks
in the heap for reuse (measured in BENCHMARKS.md).
"""

from __future__ import annotations

import ctypes
import os
import sys

from core.config import settings

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_configured = False


def cpu_count() -> int:
    """Cores this process may use (respects affinity / cgroup pinning where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def tune_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Keep freed blocks up to ``mmap_threshold`` bytes in the glibc heap (no-op elsewhere)."""
    if not sys.platform.startswith("linux") or settings.get("no_mallopt"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    except (OSError, AttributeError):
        return False


def release_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``; no-op elsewhere): called after big
    one-off work (an index build), so the memory it used is not held by the process afterwards."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def configure() -> None:
    """Idempotent: allocator thresholds for inference. Torch keeps its default of one thread per core."""
    global _configured
    if not _configured:
        tune_allocator()
        _configured = True
