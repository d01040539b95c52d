"""Line completions of the embedded default on ONNX Runtime with drafts of several sizes, paired.

One engine per draft size (`draftTokens`; 0: none) in this process, 2 threads. At random points of
random standard-library modules (the cursor inside a line, 40 lines above it), each engine's cache
first holds the prompt without its last 8 ids (as while typing), then it completes up to the end of
the line (at most 48 ids); the engines take turns in a shuffled order per point. Reported per size:
time to the end of the line (median, p95), its ratio to no drafts (median of per-point ratios with
a bootstrap interval, and of the sums), drafted ids run and kept, and on how many points the line
equals the one without drafts (a pass over several ids can round differently).
"""

from __future__ import annotations

import argparse
import json
import random
import sysconfig
import time
from pathlib import Path
from typing import Any

from .machine import load_average, machine_info
from .stats import bootstrap_interval, median, p95

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TYPED_IDS = 8  # ids of the prompt not yet in the cache, as after a few keys


def points(count: int, seed: int) -> list[str]:
    """`count` prompts: 40 lines of a module and the start of the next line, cut inside its text."""
    rng = random.Random(seed)
    files = sorted(STDLIB.glob("*.py"))
    rng.shuffle(files)
    prompts: list[str] = []
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        if len(lines) < 80:
            continue
        for _ in range(2):
            i = rng.randrange(40, len(lines) - 1)
            code = lines[i].strip()
            if not code:
                continue
            cut = len(lines[i]) - len(lines[i].lstrip()) + rng.randrange(0, max(1, len(code) // 2))
            prompts.append("".join(lines[i - 40:i]) + lines[i][:cut])
        if len(prompts) >= count:
            break
    return prompts[:count]


def line_completion(model: Any, ids: list[int]) -> tuple[list[int], float]:
    """The ids up to the end of the line (at most 48) and the milliseconds they took, the prompt
    without its last TYPED_IDS ids cached first."""
    engine = model._engine
    engine.release_cached_prompts()
    list(engine.stream(ids[:-TYPED_IDS], 0, 1, []))
    started, got = time.perf_counter(), []
    for token in engine.stream(ids, 0, 48, [model.tokenizer.eos_token]):
        got.append(token)
        if "\n" in model.tokenizer.decode(got):
            break
    return got, (time.perf_counter() - started) * 1000


def measure(sizes: list[int], count: int, seed: int, threads: int, spec: str = "default") -> dict[str, Any]:
    """Paired line completions of the model `spec` names for each draft size (the first is the reference)."""
    from inference.engines.loading import load_model

    models = {n: load_model(spec, "cpu", "int8", threads, local_files_only=True, runtime="onnxruntime", draft_tokens=n)
              for n in sizes}
    tokenizer = models[sizes[0]].tokenizer
    rng = random.Random(seed)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    lines: dict[int, list[list[int]]] = {n: [] for n in sizes}
    loads = []
    for i, prompt in enumerate(points(count, seed)):
        ids = tokenizer.encode(prompt)
        for n in rng.sample(sizes, len(sizes)):
            got, ms = line_completion(models[n], ids)
            lines[n].append(got)
            times[n].append(ms)
        loads.append((load_average() or (0.0,))[0])
        print(f"bench: point {i + 1}: " + ", ".join(f"{n}: {times[n][-1]:.0f} ms" for n in sizes), flush=True)
    reference = sizes[0]
    rows = []
    for n in sizes:
        ratios = [a / b for a, b in zip(times[n], times[reference]) if b > 0]
        stats = models[n].prompt_cache_stats() or {}
        rows.append({
            "draft_tokens": n, "median_ms": round(median(times[n]), 1), "p95_ms": round(p95(times[n]), 1),
            "ratio_median": round(median(ratios), 3), "ratio_ci": [round(x, 3) for x in bootstrap_interval(ratios, median)],
            "ratio_of_sums": round(sum(times[n]) / sum(times[reference]), 3),
            "drafted_ids": stats.get("drafted_ids", 0), "accepted_ids": stats.get("accepted_ids", 0),
            "same_line": sum(a == b for a, b in zip(lines[n], lines[reference])), "points": len(times[n]),
        })
    return {"machine": machine_info(), "seed": seed, "threads": threads, "load_mean": round(sum(loads) / len(loads), 2),
            "reference": reference, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.draft_tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,2,4", help="draft sizes, comma-separated; the first is the reference")
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11, help="which modules and points (7 chose the default size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/draft-tokens.json"))
    args = parser.parse_args(argv)
    result = measure([int(n) for n in args.sizes.split(",")], args.points, args.seed, args.threads)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["rows"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
