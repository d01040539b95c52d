"""The default's decode step on ONNX Runtime against the memory-bandwidth bound, its weights on huge
pages (as the server runs) and on 4 kB pages, side by side.

Each round starts one process per variant, the order rotating: it loads the model as the server
does (2 threads; `huge-pages` waits for the engine's huge-page thread, `4k-pages` has it off), then
times the decode steps after `--contexts` cached ids of `inspect.py` (bench/runtime_decode.py's
method: 16 steps a request, `--requests` requests) and a first pass over `--lengths` ids. Between
rounds this process measures the read bandwidth (bench/bandwidth.py); the bound is the bytes of
`model.onnx.data` over the median bandwidth. Ratios are of per-round medians, with bootstrap
intervals over the rounds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .bandwidth import memory_bandwidth_gbs
from .compute_types import TEXT, first_pass_ms, paired_summary
from .runtime_decode import decode_steps
from .stats import median

VARIANTS = ("huge-pages", "4k-pages")


def _child(model_dir: Path, variant: str, contexts: list[int], lengths: list[int], requests: int, threads: int) -> dict[str, Any]:
    """One variant's samples, in this process."""
    from inference.engines.memory import map_large_buffers
    from inference.engines.onnx_engine import OnnxDecoderEngine
    from inference.engines.tokenizer import CodeTokenizer

    map_large_buffers()  # as the server does before it loads a model
    engine = OnnxDecoderEngine(model_dir, CodeTokenizer(model_dir), threads=threads, max_cached_prompts=1, draft_tokens=0,
                               huge_pages=variant == "huge-pages")
    if engine.huge_pages is not None:
        engine.huge_pages.join()
    ids = engine.tokenizer.encode(TEXT.read_text(encoding="utf-8"))
    model, steps = SimpleNamespace(_engine=engine), {}
    for n in contexts:
        steps[n] = []
        for _ in range(requests):
            engine.release_cached_prompts()
            steps[n] += decode_steps(model, ids, n, 16)
    passes = {n: [first_pass_ms(engine, ids[r:r + n]) for r in range(requests)] for n in lengths}
    huge = sum(int(line.split()[1]) for line in Path("/proc/self/smaps").read_text().splitlines() if line.startswith("AnonHugePages:"))
    return {"steps": steps, "passes": passes, "anon_huge_mb": huge // 1024,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}  # kilobytes on Linux


def _run_child(model_dir: Path, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.huge_pages", "--child", variant, "--model-dir", str(model_dir),
               "--contexts", args.contexts, "--lengths", args.lengths, "--requests", str(args.requests), "--threads", str(args.threads)]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    return {**result, "steps": {int(k): v for k, v in result["steps"].items()}, "passes": {int(k): v for k, v in result["passes"].items()}}


def _row(samples: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Per variant: median / p95 over all samples, and the ratio of per-round medians to the first variant's."""
    return {variant: paired_summary(rounds, samples[VARIANTS[0]]) for variant, rounds in samples.items()}


def _numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n]


def measure(model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Rounds of both variants' processes, the bandwidth between them; the report."""
    from inference.models.gguf_onnx import WEIGHTS_FILE

    contexts, lengths = _numbers(args.contexts), _numbers(args.lengths)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    bandwidths = []
    for round_ in range(args.rounds):
        order = VARIANTS[round_ % 2:] + VARIANTS[:round_ % 2]
        for variant in order:
            runs[variant].append(_run_child(model_dir, variant, args))
        bandwidths.append(memory_bandwidth_gbs(args.threads))
        print(f"bench: round {round_ + 1}/{args.rounds}: step at {contexts[0]} cached "
              + ", ".join(f"{v} {median(runs[v][-1]['steps'][contexts[0]]):.1f} ms" for v in VARIANTS)
              + f"; bandwidth {bandwidths[-1]:.1f} GB/s", flush=True)
    weight_bytes = (model_dir / WEIGHTS_FILE).stat().st_size
    bound_ms = weight_bytes / (median(bandwidths) * 1e9) * 1000
    decode = []
    for n in contexts:
        row = _row({v: [r["steps"][n] for r in runs[v]] for v in VARIANTS})
        for variant in VARIANTS:
            row[variant]["times_bound"] = round(row[variant]["median_ms"] / bound_ms, 2)
        decode.append({"cached_ids": n, **row})
    return {"model_dir": str(model_dir), "threads": args.threads, "rounds": args.rounds, "requests": args.requests,
            "bandwidth_gbs": [round(b, 2) for b in bandwidths], "weights_mb": round(weight_bytes / 1e6, 1), "bound_ms": round(bound_ms, 2),
            "anon_huge_mb": {v: [r["anon_huge_mb"] for r in runs[v]] for v in VARIANTS},
            "peak_rss_mb": {v: [r["peak_rss_mb"] for r in runs[v]] for v in VARIANTS},
            "decode_step": decode,
            "first_pass": [{"ids": n, **_row({v: [r["passes"][n] for r in runs[v]] for v in VARIANTS})} for n in lengths]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.huge_pages", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--contexts", default="8,1024", help="cached ids before the timed steps, comma-separated")
    parser.add_argument("--lengths", default="256,1024", help="first-pass lengths in ids, comma-separated ('' for none)")
    parser.add_argument("--requests", type=int, default=3, help="timed requests per context and process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, help="an ONNX Runtime decoder (default: the embedded default's)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.model_dir is None:
        from inference.models.embedded import ONNX_RUNTIME, embedded_model_dir

        args.model_dir = embedded_model_dir(runtime=ONNX_RUNTIME)
    if args.child:
        print(json.dumps(_child(args.model_dir, args.child, _numbers(args.contexts), _numbers(args.lengths), args.requests, args.threads)))
        return 0
    result = measure(args.model_dir, args)
    text = json.dumps(result, indent=2) + "\n"
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
