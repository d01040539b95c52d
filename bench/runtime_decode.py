"""Decode step of the embedded default on ONNX Runtime and on CTranslate2, side by side, against
the memory-bandwidth bound.

Both engines are loaded in this process as the server loads them (2 threads) and measured in
turns, the order rotating per repetition. Per cached context of n ids of `inspect.py`: the engine
is given the n ids once (ONNX Runtime keeps their KV cache; CTranslate2 caches them as its static
prompt), then asked for 17 new ids after one more; the decode step is the time between successive
new ids (16 per request). The bound is the bytes of weights one step reads (`model.onnx.data`,
`model.bin`) over the read bandwidth measured in the same run (bench/bandwidth.py).
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inference.engines.loading import load_model
from inference.models.convert import weights_file

from .bandwidth import memory_bandwidth_gbs
from .stats import bootstrap_interval, median, p95

RUNTIMES = ("onnxruntime", "ctranslate2")
TEXT = Path(sysconfig.get_paths()["stdlib"]) / "inspect.py"


def _gaps(stream: Iterator[int]) -> list[float]:
    """Milliseconds between successive ids of `stream` (its first id starts the clock)."""
    times = [time.perf_counter() for _ in stream]
    return [(b - a) * 1000 for a, b in zip(times, times[1:])]


def decode_steps(model: Any, ids: list[int], context: int, steps: int) -> list[float]:
    """Decode-step times after `context` cached ids (the engine's cache filled by a first request)."""
    engine = model._engine
    prompt = ids[: context + 1]
    list(engine.stream(prompt, context, 1, []))  # fills the cache (static prompt / KV state)
    return _gaps(engine.stream(prompt, context, steps + 1, []))


def measure(contexts: list[int], repeats: int, steps: int, threads: int,
            specs: dict[str, str] | None = None) -> dict[str, Any]:
    """Decode steps of the model `specs` names for each runtime (default: the embedded default on both)."""
    specs = specs or dict.fromkeys(RUNTIMES, "default")
    models = {runtime: load_model(specs[runtime], "cpu", "int8", threads, local_files_only=True, runtime=runtime)
              for runtime in RUNTIMES}
    ids = models[RUNTIMES[0]].tokenizer.encode(TEXT.read_text(encoding="utf-8"))
    samples: dict[str, dict[int, list[list[float]]]] = {r: {n: [] for n in contexts} for r in RUNTIMES}
    for repeat in range(repeats):
        order = RUNTIMES[repeat % 2:] + RUNTIMES[:repeat % 2]
        for runtime in order:
            for n in contexts:
                samples[runtime][n].append(decode_steps(models[runtime], ids, n, steps))
                print(f"bench: {runtime} context {n} repeat {repeat}: step p50 {median(samples[runtime][n][-1]):.1f} ms", flush=True)
    bandwidth = memory_bandwidth_gbs(threads)
    rows = []
    for n in contexts:
        per_repeat = {r: [median(s) for s in samples[r][n]] for r in RUNTIMES}
        ratios = [a / b for a, b in zip(per_repeat["onnxruntime"], per_repeat["ctranslate2"]) if b > 0]
        row: dict[str, Any] = {"context": n, "ratio_onnx_over_ct2": round(median(ratios), 3) if ratios else None,
                               "ratio_ci": [round(x, 3) for x in bootstrap_interval(ratios, median)] if ratios else None}
        for runtime in RUNTIMES:
            steps_ms = [x for s in samples[runtime][n] for x in s]
            weights = weights_file(models[runtime].path).stat().st_size
            bound = weights / (bandwidth * 1e9) * 1000
            row[runtime] = {"median_ms": round(median(steps_ms), 2), "p95_ms": round(p95(steps_ms), 2), "n": len(steps_ms),
                            "weights_mb": round(weights / 1e6, 1), "bound_ms": round(bound, 2),
                            "times_bound": round(median(steps_ms) / bound, 2)}
        rows.append(row)
    return {"threads": threads, "bandwidth_gbs": round(bandwidth, 2), "repeats": repeats, "steps": steps, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runtime_decode", description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="8,1024", help="cached context lengths in ids, comma-separated")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--steps", type=int, default=16, help="decode steps timed per request")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/runtime-decode.json"))
    args = parser.parse_args(argv)
    result = measure([int(c) for c in args.contexts.split(",")], args.repeats, args.steps, args.threads)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["rows"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
