"""Give freed heap memory back to the operating system.

CTranslate2's temporary buffers (a 1,000-token prompt's activations and logits, a few hundred MB
on SmolLM2-135M) are freed after each generation, but glibc keeps the pages: measured here, a
server's RSS went from 346 MB after load to 480 MB after one long prompt, and back to 308 MB
after `malloc_trim(0)` (240 MB right after load).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_BUFFER_BYTES = 8 << 20


@functools.cache
def glibc_function(function: str) -> ctypes._CFuncPtr | None:
    """`function` of the C library, None where it is not glibc (or has no such function)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function) if name else None
    except (OSError, AttributeError):  # not glibc
        return None


def map_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Have glibc give every allocation of `threshold` bytes or more its own mapping, unmapped when freed.

    By default glibc raises that threshold (up to 32 MB) each time a large mapped block is freed,
    so after the first generations CTranslate2's large buffers (a prompt pass's attention scores:
    9 heads x 700 x 700 floats = 18 MB) come from the heap instead, which keeps them and fragments:
    a long-running server's RSS climbs for minutes. A fixed threshold stops the climb. It must stay
    above the buffers allocated at every decoding step (a layer's keys and values over the whole
    context: 2.4 MB for 1,024 tokens on SmolLM2-135M, 8 MB at a hidden size of 2,048): mapping those
    faults in every page at every step, and decoding at 700 tokens took 61-64 ms per token with a
    1 MB threshold against 35-38 ms (`python -m bench.heap`). Call it once, before the models load;
    False where this is not glibc.
    """
    mallopt = glibc_function("mallopt")
    return bool(mallopt is not None and mallopt(M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> bool:
    """Return free heap pages to the OS (glibc); False where that is not possible."""
    trim = glibc_function("malloc_trim")
    return bool(trim is not None and trim(0))
