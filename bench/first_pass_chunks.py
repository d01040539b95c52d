"""A prompt's first pass on ONNX Runtime in one pass against passes of at most N ids, side by side.

`GroupQueryAttention` on the CPU computes every (query, key) pair of a pass, the keys after a query
too, so its time grows with the square of a pass's length; passes of a few hundred ids continuing
each other's cache skip most of that, for one more read of the weights per pass. One process loads
the embedded default (or `--model-dir`) once; each repetition times every chunk size in turn (the
order rotating) over each prompt length, nothing cached; ratios are to the single pass
(`inference.engines.onnx_engine.FIRST_PASS_CHUNK_IDS` is the setting measured).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .compute_types import TEXT, first_pass_ms, paired_summary

ONE_PASS = 0  # a chunk size meaning: the whole prompt in one pass


def _label(chunk: int) -> str:
    return "one pass" if chunk == ONE_PASS else str(chunk)


def measure(model_dir: Path, chunks: list[int], lengths: list[int], repeats: int, threads: int) -> dict[str, Any]:
    """Milliseconds of first passes over `lengths` ids per chunk size, the first size the baseline."""
    from inference.engines import onnx_engine
    from inference.engines.tokenizer import CodeTokenizer

    engine = onnx_engine.OnnxDecoderEngine(model_dir, CodeTokenizer(model_dir), threads=threads, max_cached_prompts=1, draft_tokens=0)
    ids = engine.tokenizer.encode(TEXT.read_text(encoding="utf-8"))
    times: dict[int, dict[int, list[list[float]]]] = {c: {n: [] for n in lengths} for c in chunks}
    setting = onnx_engine.FIRST_PASS_CHUNK_IDS
    try:
        for repeat in range(repeats + 1):  # the first round warms up and is not kept
            shift = repeat % len(chunks)
            for chunk in chunks[shift:] + chunks[:shift]:
                onnx_engine.FIRST_PASS_CHUNK_IDS = max(lengths) if chunk == ONE_PASS else chunk
                for n in lengths:
                    ms = first_pass_ms(engine, ids[repeat * 7: repeat * 7 + n])
                    if repeat:
                        times[chunk][n].append([ms])
            if repeat:
                print(f"bench: repeat {repeat}: " + ", ".join(f"{_label(c)} {[round(times[c][n][-1][0]) for n in lengths]} ms"
                                                           for c in chunks), flush=True)
    finally:
        onnx_engine.FIRST_PASS_CHUNK_IDS = setting
    baseline = chunks[0]
    return {"model_dir": str(model_dir), "threads": threads, "repeats": repeats, "baseline": _label(baseline),
            "first_pass": [{"ids": n, **{_label(c): paired_summary(times[c][n], times[baseline][n]) for c in chunks}} for n in lengths]}


def main(argv: list[str] | None = None) -> int:
    from inference.models.embedded import ONNX_RUNTIME, embedded_model_dir

    parser = argparse.ArgumentParser(prog="python -m bench.first_pass_chunks", description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="0,128,256,512", help="chunk sizes in ids, the first the baseline (0: one pass)")
    parser.add_argument("--lengths", default="256,512,1024,2048", help="prompt lengths in ids")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, help="an ONNX Runtime decoder (default: the embedded default's)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/first-pass-chunks.json"))
    args = parser.parse_args(argv)
    model_dir = args.model_dir or embedded_model_dir(runtime=ONNX_RUNTIME)
    result = measure(model_dir, [int(c) for c in args.chunks.split(",")], [int(n) for n in args.lengths.split(",")],
                     args.repeats, args.threads)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for row in result["first_pass"]:
        print(row["ids"], {c: (v["median_ms"], v["ratio"], v["ratio_ci"]) for c, v in row.items() if c != "ids"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
