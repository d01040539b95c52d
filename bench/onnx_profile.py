"""Where a decode step of the default on ONNX Runtime goes: ONNX Runtime's own profiler, per operator.

The embedded default's graph is loaded with profiling on (2 threads); `--cached` ids of `inspect.py`
are run once, then `--steps` decode passes of one id each; with `--pass-ids N`, `--steps` passes of N
ids instead, each continuing the same cached ids (`--cached 0 --pass-ids 1024`: a prompt's first pass
in one pass, after one more left out). Reported per operator type: milliseconds per pass (kernel
time, the first pass left out) and nodes per pass; and the wall time of a pass.
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import time
from collections import Counter
from pathlib import Path
from typing import Any

TEXT = Path(sysconfig.get_paths()["stdlib"]) / "inspect.py"


def profile(model_dir: Path, cached: int, steps: int, threads: int, prefix: Path, pass_ids: int = 1) -> dict[str, Any]:
    """Per-operator milliseconds of `steps` passes after `cached` ids, from the profile file: decode
    passes continuing each other, or with `pass_ids` > 1 passes of that many ids from the same start."""
    import onnxruntime

    from inference.engines.onnx_engine import OnnxDecoderEngine
    from inference.engines.tokenizer import CodeTokenizer
    from inference.models.gguf_onnx import GRAPH_FILE

    engine = OnnxDecoderEngine(model_dir, CodeTokenizer(model_dir), threads=threads, max_cached_prompts=1, draft_tokens=0)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling, options.profile_file_prefix = True, str(prefix)
    engine.session = onnxruntime.InferenceSession(str(model_dir / GRAPH_FILE), options, providers=["CPUExecutionProvider"])
    ids = engine.tokenizer.encode(TEXT.read_text(encoding="utf-8"))[:cached + max(steps, pass_ids)]
    _, state = engine._run(ids[:cached] or ids[:pass_ids], None)  # the pass left out
    start = state if cached else None
    started = time.perf_counter()
    for step in range(steps):
        if pass_ids == 1:
            _, state = engine._run([ids[cached + step]], state)
        else:
            engine._run(ids[cached:cached + pass_ids], start)
    wall = (time.perf_counter() - started) / steps * 1000
    events = json.loads(Path(engine.session.end_profiling()).read_text())
    runs = sorted((e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"), key=lambda e: e["ts"])
    after_prompt = runs[0]["ts"] + runs[0]["dur"]
    kernel_us, nodes = Counter(), Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] > after_prompt:
            kernel_us[event["args"]["op_name"]] += event["dur"]
            nodes[event["args"]["op_name"]] += 1
    passes = len(runs) - 1
    return {"cached": cached, "pass_ids": pass_ids, "steps": passes, "threads": threads, "wall_ms_per_pass": round(wall, 2),
            "operators": [{"op": op, "ms_per_pass": round(us / passes / 1000, 2), "nodes": nodes[op] // passes}
                          for op, us in kernel_us.most_common()]}


def main(argv: list[str] | None = None) -> int:
    from inference.models.embedded import ONNX_RUNTIME, embedded_model_dir

    parser = argparse.ArgumentParser(prog="python -m bench.onnx_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--cached", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--pass-ids", type=int, default=1, help="ids per timed pass (1: decode steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, help="an ONNX Runtime decoder (default: the embedded default's)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/onnx-profile.json"))
    args = parser.parse_args(argv)
    model_dir = args.model_dir or embedded_model_dir(runtime=ONNX_RUNTIME)
    result = profile(model_dir, args.cached, args.steps, args.threads, Path("/tmp") / "codet5-onnx-profile", args.pass_ids)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
