"""Memory read bandwidth of this machine, and the decode-step bound it puts on a model.

One decode step of a small decoder reads every weight once (the tied embedding matrix too: it is
the output projection), so `weight bytes / read bandwidth` is the fastest a step can be. The
bandwidth is measured the way a decode step reads: a streaming sum over an array much larger than
the caches, by 1 and by `threads` threads (numpy releases the GIL in reductions), best of a few
runs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

ARRAY_BYTES = 512 * 2**20


def memory_bandwidth_gbs(threads: int = 1, array_bytes: int = ARRAY_BYTES, runs: int = 5) -> float:
    """Best of `runs` read bandwidths (GB/s, 10^9 bytes) of `threads` threads summing their share."""
    data = np.ones(array_bytes // 8, dtype=np.float64)
    copy = np.empty_like(data)
    parts = [slice(i * len(data) // threads, (i + 1) * len(data) // threads) for i in range(threads)]
    best = 0.0
    for _ in range(runs):
        for kernel, args, traffic in ((np.sum, lambda s: (data[s],), 1), (np.copyto, lambda s: (copy[s], data[s]), 2)):
            workers = [threading.Thread(target=kernel, args=args(part)) for part in parts]
            started = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            best = max(best, traffic * data.nbytes / (time.perf_counter() - started) / 1e9)
    return best


def weight_bytes(model_dir: Path) -> int:
    """Bytes of a CTranslate2 model's weights (its `model.bin`)."""
    return (Path(model_dir) / "model.bin").stat().st_size


def decode_bound(model_dir: Path, threads: int, step_ms: float) -> dict[str, float]:
    """The measured decode step against the bandwidth bound for `threads` threads."""
    bandwidth = memory_bandwidth_gbs(threads)
    bound_ms = weight_bytes(model_dir) / (bandwidth * 1e9) * 1000
    return {"threads": threads, "bandwidth_gbs": round(bandwidth, 2), "weight_mb": round(weight_bytes(model_dir) / 1e6, 1),
            "bound_ms": round(bound_ms, 4), "decode_step_ms": round(step_ms, 2), "times_bound": round(step_ms / bound_ms, 2)}
