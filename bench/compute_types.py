"""The embedded default's ONNX Runtime builds side by side: a prompt's first pass, the decode step,
and how far each build's logits are from a float32 build's.

Each compute type's build (`int8`, `int4`; built first if missing) is loaded in this process as the
server loads it (2 threads) and measured in turns, the order rotating per repetition: the first
pass over n ids of `inspect.py` with nothing cached (`--lengths`), and the decode steps after n
cached ids (`--contexts`, as bench/runtime_decode.py times them). Ratios are per repetition, against
the first compute type, with bootstrap intervals. With `--float32` (the embedded default built in
float32 for ONNX Runtime, about 2 GB, built first if missing), each build's logits after
`--windows` windows of 600 ids of the standard library (599 ids in one pass, then one decode step:
what a suggestion starts from) are compared with that build's: the relative distance (norm of the
difference over the norm of float32's) and whether the most likely id is the same.
"""

from __future__ import annotations

import argparse
import json
import random
import sysconfig
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference.engines.loading import load_model

from .runtime_decode import decode_steps
from .stats import bootstrap_interval, median, p95

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TEXT = STDLIB / "inspect.py"
WINDOW = 600  # ids per window of the distance check


def first_pass_ms(engine: Any, ids: list[int]) -> float:
    """Milliseconds of a first pass over `ids` with nothing cached (it yields the first new id)."""
    engine.release_cached_prompts()
    started = time.perf_counter()
    list(engine.stream(ids, 0, 1, []))
    return (time.perf_counter() - started) * 1000


def _windows(tokenizer: Any, count: int, size: int, seed: int) -> list[list[int]]:
    files = sorted(STDLIB.glob("*.py"))
    random.Random(seed).shuffle(files)
    rng, windows = random.Random(seed), []
    for path in files:
        ids = tokenizer.encode(path.read_text(encoding="utf-8", errors="replace"))
        if len(ids) > size + 100:
            start = rng.randrange(0, len(ids) - size)
            windows.append(ids[start:start + size])
        if len(windows) == count:
            break
    return windows


def _next_logits(engine: Any, ids: list[int]) -> np.ndarray:
    _, state = engine._run(ids[:-1], None)
    return engine._run(ids[-1:], state)[0][-1]


def distance_from(reference: Path, engines: dict[str, Any], windows: list[list[int]]) -> dict[str, dict[str, Any]]:
    """Per build: the median and mean relative distance of its next-id logits from `reference`'s
    (an ONNX Runtime float32 directory) over `windows`, and how often the most likely id is the same."""
    from inference.engines.onnx_engine import OnnxDecoderEngine
    from inference.engines.tokenizer import CodeTokenizer

    exact_engine = OnnxDecoderEngine(reference, CodeTokenizer(reference), threads=2, max_cached_prompts=1, draft_tokens=0)
    exact = [_next_logits(exact_engine, ids) for ids in windows]
    result = {}
    for name, engine in engines.items():
        got = [_next_logits(engine, ids) for ids in windows]
        distances = [float(np.linalg.norm(g - e) / np.linalg.norm(e)) for g, e in zip(got, exact)]
        result[name] = {"median_distance": round(median(distances), 4), "mean_distance": round(sum(distances) / len(distances), 4),
                        "same_top_id": sum(int(g.argmax() == e.argmax()) for g, e in zip(got, exact)), "windows": len(windows)}
    return result


def paired_summary(samples: list[list[float]], baseline: list[list[float]]) -> dict[str, Any]:
    """Median / p95 over all of `samples` (one list per repetition), and the median ratio of its
    repetitions' medians to `baseline`'s, with a bootstrap interval."""
    flat = [x for s in samples for x in s]
    ratios = [median(a) / median(b) for a, b in zip(samples, baseline) if median(b) > 0]
    return {"median_ms": round(median(flat), 2), "p95_ms": round(p95(flat), 2), "n": len(flat),
            "ratio": round(median(ratios), 3), "ratio_ci": [round(x, 3) for x in bootstrap_interval(ratios, median)]}


def measure(builds: dict[str, tuple[str, str]], lengths: list[int], contexts: list[int], repeats: int, steps: int, threads: int,
            reference: Path | None = None, windows: int = 12, window: int = WINDOW, seed: int = 3) -> dict[str, Any]:
    """First passes and decode steps of `builds` (name -> model spec and compute type), side by side;
    with `reference`, their logits' distance from it over `windows` windows of `window` ids."""
    compute_types = list(builds)
    models = {name: load_model(spec, "cpu", ct, threads, local_files_only=True, runtime="onnxruntime") for name, (spec, ct) in builds.items()}
    engines = {ct: m._engine for ct, m in models.items()}
    ids = models[compute_types[0]].tokenizer.encode(TEXT.read_text(encoding="utf-8"))
    passes: dict[str, dict[int, list[list[float]]]] = {ct: {n: [] for n in lengths} for ct in compute_types}
    steps_ms: dict[str, dict[int, list[list[float]]]] = {ct: {n: [] for n in contexts} for ct in compute_types}
    for repeat in range(repeats):
        shift = repeat % len(compute_types)
        for ct in compute_types[shift:] + compute_types[:shift]:
            for n in lengths:
                passes[ct][n].append([first_pass_ms(engines[ct], ids[repeat:repeat + n])])
            for n in contexts:
                engines[ct].release_cached_prompts()
                steps_ms[ct][n].append(decode_steps(models[ct], ids, n, steps))
            print(f"bench: {ct} repeat {repeat}: first pass {[round(passes[ct][n][-1][0]) for n in lengths]} ms, "
                  f"step {[round(median(steps_ms[ct][n][-1]), 1) for n in contexts]} ms", flush=True)
    first = compute_types[0]
    result: dict[str, Any] = {
        "builds": {name: list(build) for name, build in builds.items()}, "threads": threads, "repeats": repeats, "steps": steps, "baseline": first,
        "first_pass": [{"ids": n, **{ct: paired_summary(passes[ct][n], passes[first][n]) for ct in compute_types}} for n in lengths],
        "decode_step": [{"context": n, **{ct: paired_summary(steps_ms[ct][n], steps_ms[first][n]) for ct in compute_types}} for n in contexts],
    }
    if reference is not None:
        result["distance_from_float32"] = distance_from(reference, engines, _windows(models[first].tokenizer, windows, window, seed))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compute_types", description=__doc__.splitlines()[0])
    parser.add_argument("--compute-types", default="int8,int4", help="builds to compare, the first the baseline of the ratios")
    parser.add_argument("--lengths", default="64,256,1024", help="first-pass lengths in ids, comma-separated")
    parser.add_argument("--contexts", default="8,1024", help="cached context lengths of the decode steps")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--steps", type=int, default=16, help="decode steps timed per request")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="default")
    parser.add_argument("--float32", action="store_true", help="compare the logits with the embedded default's float32 build")
    parser.add_argument("--windows", type=int, default=12, help="standard-library windows for the distance")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    reference = None
    if args.float32:
        from inference.models.embedded import DEFAULT_EMBEDDED, ONNX_RUNTIME, ensure_embedded_model

        reference = ensure_embedded_model(DEFAULT_EMBEDDED, lambda m: print(f"bench: {m}", flush=True), ONNX_RUNTIME, "float32")
    builds = {ct: (args.model, ct) for ct in args.compute_types.split(",")}
    result = measure(builds, [int(n) for n in args.lengths.split(",")], [int(n) for n in args.contexts.split(",")],
                     args.repeats, args.steps, args.threads, reference, args.windows)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k in ("first_pass", "decode_step", "distance_from_float32")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
