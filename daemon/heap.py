"""Keep freed arrays' memory in the process instead of handing it back to the kernel.

Each word allocates and frees a few arrays of 0.2-1 MB (its windows, frames, spectrum).
glibc returns freed memory above its thresholds to the kernel, and the next word faults
every page back in, which costs about as much as computing its features. Raising the
thresholds keeps up to TRIM_BYTES of freed heap; peak RSS barely moves, as that memory was
in use at the peak anyway. A process setting, so the command lines make it, not the library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 4 << 20  # smaller blocks come from the heap, where freed memory is reused
TRIM_BYTES = 32 << 20  # free heap kept before any goes back to the kernel


def keep_freed_memory() -> bool:
    """Raise glibc's malloc thresholds; False (and nothing changed) where there is no glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # musl or another libc: no mallopt to call
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD,
                                                                   TRIM_BYTES) == 1
    if not done:
        log.debug("mallopt refused the heap thresholds; freed memory goes back to the kernel")
    return done
