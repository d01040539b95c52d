"""`python -m bench [replay|humaneval|repo|py150|fidelity|peers|load|summarization|report]`: run the benchmarks, save their results, write RESULTS.md.

With no command, runs everything (replay, HumanEval, py150, quantization fidelity, peers, daemon
load, summarization), then writes the report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from inference.models.resolve import RUNTIMES

from .machine import LoadSampler, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
PEER_SOURCES = ("inspect.py", "argparse.py", "typing.py")
FIDELITY_TASKS = 200  # HumanEval tasks of the fidelity run within `python -m bench`


def _save(results: Path, name: str, data: dict[str, Any]) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=list) + "\n", encoding="utf-8")
    print(f"bench: wrote {path}", file=sys.stderr)
    return path


def _command() -> str:
    return "python -m bench " + shlex.join(sys.argv[1:])


def _model(name: str, compute_type: str = "auto"):
    from inference import load_model

    return load_model(name, compute_type=compute_type, local_files_only=True, progress=lambda m: print(f"bench: {m}", file=sys.stderr))


def run_replay(args: argparse.Namespace) -> None:
    from inference.completion.options import CompletionOptions

    from . import replay, stages

    if args.file:
        names = ["custom"]
        scenarios = {"custom": replay.Scenario("custom", Path(args.file), args.start_line or 2, args.lines or 30)}
    else:
        names = list(replay.SCENARIOS) if args.scenario == "all" else [args.scenario]
        scenarios = dict(replay.SCENARIOS)
    for number, name in enumerate(names):
        scenario = scenarios[name]
        scenario = replace(scenario, seed=args.seed, **({"lines": args.lines} if args.lines else {}),
                           **({"start_line": args.start_line} if args.start_line and not args.file else {}),
                           pause_chance=args.pause_chance, accept=args.accept,
                           others=tuple(Path(p) for p in args.open.split(",") if p) if args.open else ())
        print(f"bench: replay {name}: typing {scenario.lines} lines of {scenario.path} from line {scenario.start_line}",
              file=sys.stderr, flush=True)
        if args.variants:
            _save(args.results, f"replay-{name}-variants", _replay_variants(replay, scenario, args))
            continue
        if args.peer_python or args.peer_server:
            _save(args.results, f"replay-{name}-peers", _replay_peers(scenario, args, ours_first=number % 2 == 0))
            continue
        machine = machine_info()
        with LoadSampler() as load:
            result = replay.run(scenario, model=args.model, context_tokens=args.context_tokens)
        result.update(command=_command(), machine=machine, load=load.summary())
        _print_replay(result)
        if args.profile_every:
            model = _model(args.model)
            options = CompletionOptions(context_tokens=args.context_tokens, mode="line")
            completed = frozenset(r["index"] for r in result["requests"] if r["outcome"] != "superseded" and not r["cache_hit"])
            with LoadSampler() as load:
                times = stages.profile_scenario(model, scenario, options, every=args.profile_every, also=completed)
            result["stages"] = {"every": args.profile_every, "load": load.summary(), "summary": stages.summarize(times),
                                "queueing": stages.queueing(result["requests"], times), "times": [asdict(t) for t in times]}
            del model
        _save(args.results, f"replay-{name}", result)


def _print_replay(result: dict[str, Any]) -> None:
    summary, pauses = result["summary"], result["summary"].get("pauses", {})
    print(f"bench: {summary['requests']} requests, {summary['shown']} shown, {summary['superseded']} superseded, "
          f"completed p50 {summary['completed'].get('p50_ms')} ms p95 {summary['completed'].get('p95_ms')} ms, "
          f"pauses {pauses.get('count')} ({pauses.get('visible_share', 0):.0%} with a suggestion visible, "
          f"time to it p50 {pauses.get('time_to_suggestion', {}).get('p50_ms')} ms), "
          f"peak RSS {result['rss_peak_mb']} MB", file=sys.stderr, flush=True)


def _replay_variants(replay: Any, scenario: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The scenario replayed once per variant of `replay.VARIANTS`, one after another, in one run."""
    runs: dict[str, Any] = {}
    for variant in args.variants.split(","):
        print(f"bench: variant {variant}: {replay.VARIANTS[variant]}", file=sys.stderr, flush=True)
        machine = machine_info()
        with LoadSampler() as load:
            result = replay.run(scenario, model=args.model, context_tokens=args.context_tokens,
                                settings=replay.VARIANTS[variant])
        result.update(machine=machine, load=load.summary())
        _print_replay(result)
        runs[variant] = result
    return {"command": _command(), "variants": runs}


def _replay_peers(scenario: Any, args: argparse.Namespace, ours_first: bool) -> dict[str, Any]:
    """The scenario replayed by our server and by llama.cpp behind our pipeline, one after the other."""
    from inference.engines.model import default_threads

    from . import peer_replay

    if not args.peer_gguf:
        raise SystemExit("bench: --peer-python/--peer-server need --peer-gguf (the GGUF our default model was converted from)")
    programs = {"llama-cpp-python": args.peer_python,
                **{f"llama-server {e}": args.peer_server for e in ("/completion", "/infill") if args.peer_server}}
    peers = [peer_replay.PeerSetup(engine, Path(program), Path(args.peer_gguf), threads=default_threads(),
                                   debounce_ms=args.peer_debounce_ms) for engine, program in programs.items() if program]
    data = peer_replay.side_by_side(scenario, peers, model=args.model, context_tokens=args.context_tokens,
                                    ours_first=ours_first, progress=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))
    return {"command": _command(), **data}


def run_humaneval(args: argparse.Namespace) -> None:
    from inference.completion.options import CompletionOptions

    from . import humaneval

    tasks = humaneval.load_tasks(Path(args.data), args.limit)
    if args.check_canonical:
        failing = humaneval.check_canonical(tasks, args.timeout)
        print(f"bench: canonical lines failing their tests: {len(failing)} {failing[:10]}", file=sys.stderr)
        if failing:
            raise SystemExit(1)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    print(f"bench: HumanEval single-line infilling, {len(tasks)} tasks, paths {paths}", file=sys.stderr, flush=True)
    model = _model(args.model, args.compute_type)
    options = CompletionOptions(context_tokens=args.context_tokens, mode=args.mode, time_budget_ms=args.time_budget_ms)
    machine = machine_info()
    with LoadSampler() as load:
        result = humaneval.run(tasks, model, paths, options=options, timeout_s=args.timeout, jobs=args.jobs)
    result.update(command=_command(), machine=machine, load=load.summary(), model=args.model,
                  data=str(Path(args.data).resolve()))
    for path, summary in result["summary"].items():
        print(f"bench: {path:16} pass@1 {100 * summary['pass_at_1']:.1f}% EM {100 * summary['exact_match']:.1f}% "
              f"ES {100 * summary['edit_similarity']:.1f} p50 {summary['latency_p50_ms']:.0f} ms "
              f"p95 {summary['latency_p95_ms']:.0f} ms", file=sys.stderr)
    _save(args.results, args.output, result)


def run_repo(args: argparse.Namespace) -> None:
    from inference.completion.options import CompletionOptions

    from . import repo_check

    model = _model(args.model, args.compute_type)
    options = CompletionOptions(context_tokens=args.context_tokens)
    machine = machine_info()
    with LoadSampler() as load:
        result = repo_check.run(model, args.split, args.per_package, args.seed, options, args.limit,
                                tuple(v.strip() for v in args.variants.split(",") if v.strip()), args.kind)
    result.update(command=_command(), machine=machine, load=load.summary(), model=args.model, compute_type=args.compute_type)
    for variant, summary in result["variants"].items():
        print(f"bench: repo {args.split} {args.kind} {variant:10} name hit {100 * summary['name_hit']:.1f}% "
              f"EM {100 * summary['exact']:.1f}% ES {100 * summary['similarity']:.1f} "
              f"p50 {summary['latency_ms_median']:.0f} ms (n={summary['tasks']})", file=sys.stderr)
    for variant, versus in result["name_hits_versus_alone"].items():
        print(f"bench: {variant} vs alone: name hit only alone {versus['only_alone']}, only {variant} "
              f"{versus['only_this']}, McNemar p {versus['mcnemar_p']:.4f}", file=sys.stderr)
    _save(args.results, args.output or f"repo-{args.split}" + ("-control" if args.kind == "control" else ""), result)


def run_peers(args: argparse.Namespace) -> None:
    from inference.models.embedded import ensure_embedded_model

    from . import artifacts, bandwidth, peers

    if args.model != "default":
        model_dir = Path(args.model)
    elif args.compute_type in ("float32", "float16", "bfloat16"):  # weights converted at that precision
        model_dir = artifacts.smollm2_ct2(args.compute_type)
    else:
        model_dir = ensure_embedded_model("smollm2-135m")  # the peers run on the SmolLM2 GGUF
    lengths = tuple(int(n) for n in args.lengths.split(","))
    machine = machine_info()
    with LoadSampler() as load:
        result = peers.run(model_dir=model_dir, gguf=artifacts.smollm2_gguf() if args.device == "cpu" else None, hf_dir=artifacts.smollm2_hf_float32(),
                           sources=[peers_source(name) for name in PEER_SOURCES], threads=args.threads,
                           lengths=lengths, repeats=args.repeats, device=args.device, compute_type=args.compute_type)
        if args.device == "cpu":
            shortest = result["results"][str(min(lengths))]["cold"][result["ours"]]
            result["bandwidth"] = [bandwidth.decode_bound(model_dir, args.threads, 1000 / shortest["tokens_per_s"]["median"])]
    result.update(command=_command(), machine=machine, load=load.summary(), model_dir=str(model_dir))
    _save(args.results, "peers" if args.device == "cpu" else f"peers-{args.device}-{args.compute_type}", result)


def run_load(args: argparse.Namespace) -> None:
    from . import daemon_load, replay

    clients = tuple(int(n) for n in args.clients.split(","))
    machine = machine_info()
    with LoadSampler() as load:
        result = daemon_load.run(model=args.model, clients=clients, seconds=args.seconds, threads=args.threads,
                                 greedy=args.greedy, runtime=args.runtime, compute_type=args.compute_type, paced=args.paced,
                                 variants={name: replay.VARIANTS[name] for name in args.variants.split(",")} if args.variants else None)
    result.update(command=_command(), machine=machine, load=load.summary())
    runtime = "" if args.runtime == "auto" else f"-{args.runtime}"
    compute_type = "" if args.compute_type == "auto" else f"-{args.compute_type}"
    _save(args.results, f"load{'-paced' if args.paced else ''}{'-greedy' if args.greedy else ''}{runtime}{compute_type}", result)


def run_py150(args: argparse.Namespace) -> None:
    from inference.completion.options import CompletionOptions

    from . import codexglue_line

    failing = codexglue_line.check_official()
    if failing:
        raise SystemExit("bench: the CodeXGLUE evaluator does not reproduce the official samples: " + "; ".join(failing))
    options = CompletionOptions(context_tokens=args.context_tokens)
    machine = machine_info()
    with LoadSampler() as load:
        result = codexglue_line.run(_model(args.model), limit=args.limit, options=options, results=args.results)
    result.update(command=_command(), machine=machine, load=load.summary(), model=args.model)
    _save(args.results, "codexglue-line", result)


def run_fidelity(args: argparse.Namespace) -> None:
    from . import fidelity

    machine = machine_info()
    with LoadSampler() as load:
        result = fidelity.run(tuple(q.strip() for q in args.quantizations.split(",")), device=args.device,
                              humaneval_limit=args.limit, py150_limit=args.py150_limit, results=args.results)
    result.update(command=_command(), machine=machine, load=load.summary())
    _save(args.results, "fidelity", result)


def run_summarization(args: argparse.Namespace) -> None:
    from . import summarization

    with LoadSampler() as load:
        result = summarization.run(args.results, args.summarizer or summarization.SUMMARIZERS, limit=args.limit, size=args.sample)
    result.update(command=_command(), load=load.summary())
    _save(args.results, "summarization", result)


def peers_source(name: str) -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["stdlib"]) / name


def run_report(args: argparse.Namespace) -> None:
    from .report import write_report

    print(f"bench: wrote {write_report(args.results)}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    from .humaneval import DATA

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model", default="default", help="model to measure (default: the embedded default, Qwen2.5-Coder-0.5B)")
    parser.add_argument("--compute-type", default="auto", help="its compute type for humaneval, repo and load (e.g. int4; default auto)")
    parser.add_argument("--context-tokens", type=int, default=1024, help="the server's context budget (default 1024)")
    parser.add_argument("--humaneval-limit", type=int, help="with no command: only the first N HumanEval tasks")
    parser.add_argument("--replay-lines", type=int, help="with no command: lines typed per replay scenario (default 30)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where result files go; the report is written next to it (default bench/results)")
    sub = parser.add_subparsers(dest="command")

    replay = sub.add_parser("replay", help="type a standard-library file into the LSP server, keystroke by keystroke")
    replay.add_argument("--scenario", choices=("small", "large", "all"), default="all")
    replay.add_argument("--file", help="type this file instead of a scenario's")
    replay.add_argument("--open", help="comma-separated files opened in the editor before the typed one")
    replay.add_argument("--start-line", type=int, help="first line typed (1-based)")
    replay.add_argument("--lines", type=int, help="lines typed")
    replay.add_argument("--seed", type=int, default=0, help="seed of the typing pauses")
    replay.add_argument("--pause-chance", type=float, default=0.0, help="chance of a thinking pause after a key (default 0)")
    replay.add_argument("--accept", action="store_true", help="the typist accepts a suggestion the next keys would type")
    replay.add_argument("--variants", help="comma-separated bench.replay.VARIANTS (before, after) replayed in one run")
    replay.add_argument("--profile-every", type=int, default=8,
                        help="also time the stages in-process at every Nth keystroke and every Enter (0: skip)")
    replay.add_argument("--peer-python", help="side by side with llama.cpp: a Python with llama-cpp-python (bench.peer_replay)")
    replay.add_argument("--peer-server", help="side by side with a llama-server binary, /completion and /infill")
    replay.add_argument("--peer-gguf", help="the GGUF llama.cpp runs (the one our model was converted from)")
    replay.add_argument("--peer-debounce-ms", type=int, default=0, help="the peer's debounce (default 0, as llama.vim)")

    humaneval = sub.add_parser("humaneval", help="HumanEval single-line infilling: bare engine vs the server's pipeline")
    humaneval.add_argument("--limit", type=int, help="only the first N tasks")
    humaneval.add_argument("--paths", default="engine,server", help="comma-separated: engine, engine-infill, server, server-indented, server-typed")
    humaneval.add_argument("--mode", choices=("auto", "line", "block"), default="auto",
                           help="the server's completion mode (default auto, as an editor gets it)")
    humaneval.add_argument("--time-budget-ms", type=int, default=0,
                           help="the server path's time budget per completion (default 0: none; the server's is timeBudgetMs)")
    humaneval.add_argument("--timeout", type=float, default=5.0, help="seconds per test program")
    humaneval.add_argument("--jobs", type=int, default=1, help="test programs run at once (beside the model)")
    humaneval.add_argument("--data", default=str(DATA))
    humaneval.add_argument("--check-canonical", action="store_true", help="first check that every canonical line passes")
    humaneval.add_argument("--output", default="humaneval", help="results file name in bench/results (default humaneval)")

    repo = sub.add_parser("repo", help="repository-level check: lines that need a name from another open file")
    repo.add_argument("--split", choices=("dev", "held-out", "npm"), default="held-out",
                      help="Python packages (dev, held-out) or the JavaScript/TypeScript ones fetched into build/npm")
    repo.add_argument("--per-package", type=int, default=20, help="tasks per package (seeded sample)")
    repo.add_argument("--seed", type=int, default=13)
    repo.add_argument("--kind", choices=("needs-other", "control"), default="needs-other",
                      help="lines that need a name from another module, or (control) lines that need none")
    repo.add_argument("--limit", type=int, help="only the first N tasks")
    repo.add_argument("--variants", default="alone,with-files,unrelated-files",
                      help="comma-separated: alone, with-files, unrelated-files")
    repo.add_argument("--output", help="results file name in bench/results (default repo-SPLIT, repo-SPLIT-control)")
    peers = sub.add_parser("peers", help="CTranslate2 vs llama.cpp vs transformers float32, same model and prompts")
    peers.add_argument("--threads", type=int, default=2, help="threads for every runner (default 2)")
    peers.add_argument("--lengths", default="128,512,1024,2048", help="prompt lengths in tokens")
    peers.add_argument("--repeats", type=int, default=5, help="repetitions per cell (default 5)")
    peers.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="our engine's device (peers run on cpu only)")
    peers.add_argument("--compute-type", default="int8", help="our engine's compute type (default int8; int8_float16 on cuda)")

    load = sub.add_parser("load", help="N editors typing into one TCP daemon")
    load.add_argument("--clients", default="1,2,4,8", help="editor counts, run one after another")
    load.add_argument("--seconds", type=float, default=30.0, help="typing time per editor count (default 30)")
    load.add_argument("--threads", type=int, help="the daemon's CTranslate2 threads (default: its own)")
    load.add_argument("--greedy", action="store_true", help="editor 0 asks for the most tokens the settings allow")
    load.add_argument("--runtime", choices=RUNTIMES, default="auto", help="the daemon's runtime")
    load.add_argument("--paced", action="store_true", help="the editors type at a person's pace (bench.daemon_load.Editor)")
    load.add_argument("--variants", help="comma-separated bench.replay.VARIANTS: the editors' settings, each in turn per editor count")

    py150 = sub.add_parser("py150", help="CodeXGLUE py150 line completion sample: bare engine vs the server's pipeline")
    py150.add_argument("--limit", type=int, help="only the first N samples")

    fidelity = sub.add_parser("fidelity", help="the same weights as CTranslate2 float32 and int8, side by side")
    fidelity.add_argument("--quantizations", default="float32,int8", help="the first is the baseline")
    fidelity.add_argument("--device", default="cpu")
    fidelity.add_argument("--limit", type=int, help="only the first N HumanEval tasks")
    fidelity.add_argument("--py150-limit", type=int, help="only the first N py150 samples")

    from .summarization import SUMMARIZERS

    summarization = sub.add_parser("summarization", help="smoothed BLEU-4 of the summarizers and a baseline")
    summarization.add_argument("--summarizer", action="append", help=f"a summary model, repeatable (default: {', '.join(SUMMARIZERS)})")
    summarization.add_argument("--limit", type=int, help="only the first N examples of each set")
    summarization.add_argument("--sample", type=int, help="a seeded random sample of N examples of each larger set")

    sub.add_parser("report", help="write bench/RESULTS.md and the plots from bench/results/")
    return parser


COMMANDS = {"replay": run_replay, "humaneval": run_humaneval, "repo": run_repo, "py150": run_py150, "fidelity": run_fidelity,
            "peers": run_peers, "load": run_load, "summarization": run_summarization, "report": run_report}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.command:
        COMMANDS[args.command](args)
    else:
        defaults = parser.parse_args(["replay"])
        defaults.lines = args.replay_lines
        run_replay(replace_args(defaults, args))
        defaults = parser.parse_args(["humaneval"])
        defaults.limit = args.humaneval_limit
        run_humaneval(replace_args(defaults, args))
        for command in ("py150", "fidelity", "peers", "load", "summarization"):
            defaults = parser.parse_args([command])
            if command == "fidelity":  # the full float32 pass takes most of an hour here: `python -m bench fidelity`
                defaults.limit = args.humaneval_limit or FIDELITY_TASKS
            COMMANDS[command](replace_args(defaults, args))
        run_report(args)
    print(f"bench: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def replace_args(defaults: argparse.Namespace, top: argparse.Namespace) -> argparse.Namespace:
    """A subcommand's defaults with the top-level options applied."""
    defaults.model, defaults.context_tokens, defaults.results = top.model, top.context_tokens, top.results
    return defaults


if __name__ == "__main__":
    sys.exit(main())
