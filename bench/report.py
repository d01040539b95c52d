"""bench/RESULTS.md and its plots, written from the result files in bench/results/."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from . import codexglue_line, faithfulness, replay, summarization
from .fidelity import markdown as fidelity_markdown
from .speed_report import gpu_section, heap_section, load_section, peers_section, plot_peers, pyplot
from .stats import format_interval, markdown_table

BENCH = Path(__file__).resolve().parent
GOALS = {"p50_ms": 300.0, "p95_ms": 800.0, "rss_mb": 600.0}
STAGE_COLUMNS = ("context_ms", "healing_ms", "first_token_ms", "decode_ms", "postprocess_ms")
EXAMPLES = 12


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _ci_ms(ci: list[float] | None) -> str:
    return "" if not ci else format_interval(ci[0], ci[1], digits=0)


def _code(text: str) -> str:
    """`text` as a Markdown table cell: its repr in backticks, pipes escaped."""
    return "`" + repr(text).replace("|", "\\|").replace("`", "'") + "`"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _goal(value: float | None, limit: float) -> str:
    return "n/a" if value is None else ("met" if value <= limit else "missed")


def _load_text(load: dict[str, Any] | None) -> str:
    if not load or not load.get("samples"):
        return "not sampled"
    return f"mean {load['mean']}, max {load['max']} (1-minute load average, {load['samples']} samples)"


def _share_above(samples: list[list[float]], limit_mb: float) -> float:
    """Share of the time (samples are evenly spaced) a sampled RSS series spent above `limit_mb`."""
    return sum(mb > limit_mb for _, mb in samples) / len(samples) if samples else 0.0


def _machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; {machine['platform']}; "
            f"Python {machine['python']}, CTranslate2 {machine['ctranslate2']}, pygls {machine['pygls']}; "
            f"commit {machine['commit']}; {machine['date']}")


# -- plots --------------------------------------------------------------------------------------

def plot_replay(replays: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    """Latency histogram and CDF of completed requests, and the server's RSS over time."""
    plt = pyplot()
    written = []
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    for name, data in replays.items():
        completed = [r for r in data["requests"] if r["latency_ms"] is not None and r["outcome"] != "superseded"]
        runs = sorted(r["latency_ms"] for r in completed if not r["cache_hit"])
        hits = sorted(r["latency_ms"] for r in completed if r["cache_hit"])
        hist.hist(runs, bins=30, alpha=0.5, label=f"{name}: model runs ({len(runs)})")
        if hits:
            hist.hist(hits, bins=10, alpha=0.5, label=f"{name}: cache hits ({len(hits)})")
        every = sorted(r["latency_ms"] for r in completed)
        if every:
            cdf.step(every, [(i + 1) / len(every) for i in range(len(every))], where="post", label=name)
    for axis in (hist, cdf):
        axis.axvline(GOALS["p50_ms"], color="grey", linestyle=":", linewidth=1)
        axis.axvline(GOALS["p95_ms"], color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("latency of completed requests (ms)")
    hist.set_ylabel("requests")
    hist.set_title("Keystroke replay: latency")
    cdf.set_ylabel("share of completed requests")
    cdf.set_title("CDF (dotted: p50 goal, dashed: p95 goal)")
    hist.legend(fontsize=8)
    cdf.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "replay-latency.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axis = plt.subplots(figsize=(7, 3.5))
    for name, data in replays.items():
        samples = data.get("rss_samples") or []
        axis.plot([t for t, _ in samples], [mb for _, mb in samples], label=name)
    axis.axhline(GOALS["rss_mb"], color="grey", linestyle="--", linewidth=1, label="goal")
    axis.set_xlabel("seconds since the server started")
    axis.set_ylabel("server RSS (MB)")
    axis.set_title("Keystroke replay: server memory")
    axis.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "replay-rss.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    staged = {name: data["stages"]["summary"] for name, data in replays.items() if data.get("stages")}
    if staged:
        fig, axis = plt.subplots(figsize=(8, 3.8))
        names = list(staged)
        left = [0.0] * len(names)
        for column in STAGE_COLUMNS:
            widths = [staged[n][column]["mean"] for n in names]
            axis.barh(names, widths, left=left, label=column.removesuffix("_ms"))
            left = [a + b for a, b in zip(left, widths)]
        axis.set_xlabel("mean milliseconds per completion (in-process, no queueing)")
        axis.set_title("Where the time goes")
        axis.legend(fontsize=8, ncol=len(STAGE_COLUMNS), loc="upper center", bbox_to_anchor=(0.5, -0.2))
        fig.tight_layout()
        written.append(out / "stages.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def plot_humaneval(data: dict[str, Any], out: Path) -> list[Path]:
    """Per path: latency CDF, and pass@1 / exact match with their 95% intervals."""
    plt = pyplot()
    fig, (cdf, bars) = plt.subplots(1, 2, figsize=(11, 4))
    for path, attempts in data["attempts"].items():
        latency = sorted(a["latency_ms"] for a in attempts)
        cdf.step(latency, [(i + 1) / len(latency) for i in range(len(latency))], where="post", label=path)
    cdf.set_xscale("log")
    cdf.set_xlabel("latency per task (ms, log scale)")
    cdf.set_ylabel("share of tasks")
    cdf.set_title("HumanEval single-line infilling: latency CDF")
    cdf.legend(fontsize=8)
    paths = list(data["summary"])
    for offset, (metric, label) in enumerate((("pass_at_1", "pass@1"), ("exact_match", "exact match"))):
        values = [100 * data["summary"][p][metric] for p in paths]
        cis = [data["summary"][p][f"{metric}_ci"] for p in paths]
        errors = [[v - 100 * lo for v, (lo, _) in zip(values, cis)], [100 * hi - v for v, (_, hi) in zip(values, cis)]]
        positions = [i + offset * 0.38 for i in range(len(paths))]
        bars.bar(positions, values, width=0.36, yerr=errors, capsize=3, label=label)
    bars.set_xticks([i + 0.19 for i in range(len(paths))], paths)
    bars.set_ylabel("% of tasks (95% CI)")
    bars.set_title(f"{data['tasks']} tasks")
    bars.legend(fontsize=8)
    fig.tight_layout()
    path = out / "humaneval.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


# -- sections -----------------------------------------------------------------------------------

def replay_section(replays: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["## Keystroke replay through the LSP server (stdio)", ""]
    first = next(iter(replays.values()))
    scenario = first["scenario"]
    lines += [
        f"A fresh `python -m lsp_server` is started over stdio per scenario and driven by pygls's LanguageClient. "
        f"The typed lines are removed from the file; the replay puts the cursor at the end of the line before them "
        f"and types them back: Enter with the line's indentation (an editor's auto-indent), then every character, "
        f"one incremental `didChange` per key, each followed by a `textDocument/inlineCompletion` request that is not "
        f"awaited. Pause between keys {scenario['key_ms'][0]:.0f}-{scenario['key_ms'][1]:.0f} ms, before Enter "
        f"{scenario['line_end_ms'][0]:.0f}-{scenario['line_end_ms'][1]:.0f} ms (uniform, seeded). Server options: "
        f"`{json.dumps(first['options'])}`. "
        f"*Superseded*: came back empty after a newer request had been sent (the server cancelled it). "
        f"*Completed*: every other answer. Cache hits are told apart by replaying the typed-ahead rule on the client; "
        f"the hit rate is the server's own (`codet5.status`). RSS is sampled every 100 ms with psutil.",
        "",
    ]
    rows = []
    for name, data in replays.items():
        s, sc = data["summary"], data["scenario"]
        completed, runs, hits = s["completed"], s["model_runs"], s["cache_hits"]
        rows.append([
            name, f"`{Path(sc['path']).name}` ({sc['file_lines']} lines, {sc['file_bytes'] / 1000:.1f} kB)",
            f"{sc['lines']} from line {sc['start_line']}", s["requests"],
            f"{_ms(completed.get('p50_ms'))} {_ci_ms(completed.get('p50_ci'))}",
            f"{_ms(completed.get('p95_ms'))} {_ci_ms(completed.get('p95_ci'))}",
            f"{_ms(runs.get('p50_ms'))} / {_ms(runs.get('p95_ms'))} (n={runs['count']})",
            f"{_ms(hits.get('p50_ms'))} / {_ms(hits.get('p95_ms'))} (n={hits['count']})",
            f"{_pct(data['server_cache_hit_rate'])} ({data['server_cache']['hits']}/{data['server_cache']['hits'] + data['server_cache']['misses']})",
            f"{_pct(s['superseded_share'])} {format_interval(*s['superseded_ci'], scale=100)}",
            f"{_pct(s['visible_share'])}",
            f"{data['rss_peak_mb']:.0f} (model loaded {_ms(data.get('rss_at_ready_mb'))}, "
            f"after the first request {_ms(data.get('rss_after_first_request_mb'))}; "
            f"above {GOALS['rss_mb']:.0f} MB {_pct(_share_above(data.get('rss_samples') or [], GOALS['rss_mb']))} of the time)",
            _load_text(data.get("load")),
        ])
    lines.append(markdown_table(
        ["scenario", "file", "typed lines", "requests", "completed p50 ms [95% CI]", "completed p95 ms [95% CI]",
         "model runs p50/p95 ms", "cache hits p50/p95 ms", "cache hit rate", "superseded [95% CI]",
         "suggestion shown before next key", "peak RSS MB", "load during run"], rows))
    lines += ["", "Goals on this machine: p50 <= 300 ms, p95 <= 800 ms, RSS < 600 MB.", ""]
    goal_rows = []
    for name, data in replays.items():
        completed, runs = data["summary"]["completed"], data["summary"]["model_runs"]
        goal_rows.append([
            name, f"{_goal(completed.get('p50_ms'), GOALS['p50_ms'])} / {_goal(runs.get('p50_ms'), GOALS['p50_ms'])}",
            f"{_goal(completed.get('p95_ms'), GOALS['p95_ms'])} / {_goal(runs.get('p95_ms'), GOALS['p95_ms'])}",
            _goal(data["rss_peak_mb"], GOALS["rss_mb"]), f"{data['ready_s']:.1f}", _ms(data["cold_request_ms"])])
    lines.append(markdown_table(["scenario", "p50 goal (completed / model runs)", "p95 goal (completed / model runs)",
                                 "RSS goal", "server ready after (s)", "first request (ms)"], goal_rows))
    lines += ["", "![replay latency](plots/replay-latency.png)", "", "![server RSS](plots/replay-rss.png)", ""]
    lines += stages_section(replays)
    return lines


def stages_section(replays: dict[str, dict[str, Any]]) -> list[str]:
    staged = {name: data["stages"] for name, data in replays.items() if data.get("stages")}
    if not staged:
        return []
    every = next(iter(staged.values()))["every"]
    lines = [
        "### Where the time goes (in-process, one completion at a time)",
        "",
        f"The same stages as `CompletionPipeline`, timed in the benchmark's process at every {every}th keystroke "
        f"and every Enter of each scenario, in typing order (so the static-prompt cache behaves as while typing), "
        f"with no other request queued. *healing*: a forward pass spent only on ranking candidates for the first "
        f"token when the prompt was backed off (a separate pass, or a speculative one whose first token did not fit); "
        f"*first token*: the generation call's prompt pass up to its "
        f"first token; *decode*: the remaining tokens. Mean / p50 / p95 in ms.",
        "",
    ]
    columns = ["context_ms", "syntax_ms", "healing_ms", "first_token_ms", "decode_ms", "decode_ms_per_token", "tokens",
               "postprocess_ms", "total_ms", "prompt_tokens"]
    rows = []
    for name, data in staged.items():
        s = data["summary"]
        rows.append([name, s["static_resets"]["completions"],
                     *(f"{s[c]['mean']:.0f} / {s[c]['p50']:.0f} / {s[c]['p95']:.0f}" for c in columns)])
    lines.append(markdown_table(["scenario", "completions", *(c.removesuffix("_ms") for c in columns)], rows))
    lines.append("")
    for name, data in staged.items():
        s = data["summary"]
        healing = s.get("healing", {})
        share = s["healing_ms"]["mean"] / s["total_ms"]["mean"] if s["total_ms"]["mean"] else 0.0
        lines.append(
            f"- {name}: the prompt was backed off (healed) in {healing.get('healed', 0)} of {healing.get('completions', 0)} "
            f"completions; the model's most likely first token re-created the cut in {healing.get('argmax_fits', 0)} "
            f"of them. {healing.get('extra_passes', 0)} completions paid an extra forward pass for the healing token "
            f"({_pct(share)} of the mean total). Static-prompt cache resets: {s['static_resets']['total']}. "
            f"Load: {_load_text(data.get('load'))}."
        )
        queue = data.get("queueing", {})
        if queue.get("count"):
            lines.append(
                f"- {name}: LSP latency of the replay's completed model runs minus the in-process time at the same "
                f"document state: median {_ms(queue['p50_ms'])} ms, p95 {_ms(queue['p95_ms'])} ms (n={queue['count']}): "
                f"the wait behind superseded requests' work, transport and scheduling (the two runs are minutes "
                f"apart, so a load change shows here too; negative: the in-process run was slower)."
            )
    lines += ["", "![stages](plots/stages.png)", ""]
    return lines


def humaneval_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "## HumanEval single-line infilling",
        "",
        f"{data['tasks']} tasks of `{Path(data['data']).name}` (read at run time), greedy, model `{data['model']}`. "
        f"*engine*: `CodeModel.complete(prompt)` left to right with token healing, stopped at the first newline "
        f"after content. *server*: `CompletionPipeline.suggest` on the document an editor holds (the missing line "
        f"emptied, its newline kept, the cursor at the start of that empty line), server settings "
        f"`{json.dumps(data['settings'])}`. *server-indented*: the same with the missing line's indentation typed "
        f"and the cursor after it. pass@1: `prompt + line + suffix + test + check(entry_point)` run in a separate "
        f"process, {data['timeout_s']:.0f} s limit; exact match and edit similarity (python-Levenshtein `ratio`) "
        f"compare the stripped line with the canonical one. Intervals: Wilson 95% for proportions, bootstrap 95% "
        f"for edit similarity and latency. Run time {data['seconds'] / 60:.1f} min; load {_load_text(data.get('load'))}.",
        "",
    ]
    rows = []
    for path, s in data["summary"].items():
        rows.append([
            path, f"{_pct(s['pass_at_1'])} {format_interval(*s['pass_at_1_ci'], scale=100)}",
            f"{_pct(s['exact_match'])} {format_interval(*s['exact_match_ci'], scale=100)}",
            f"{100 * s['edit_similarity']:.1f} {format_interval(*s['edit_similarity_ci'], scale=100)}",
            f"{s['latency_p50_ms']:.0f} {_ci_ms(s['latency_p50_ci'])}", f"{s['latency_p95_ms']:.0f} {_ci_ms(s['latency_p95_ci'])}",
            s["empty"], s["timeouts"],
        ])
    lines.append(markdown_table(["path", "pass@1 [95% CI]", "exact match [95% CI]", "edit similarity [95% CI]",
                                 "p50 ms [95% CI]", "p95 ms [95% CI]", "no suggestion", "timeouts"], rows))
    comparison = data.get("comparison") or {}
    if comparison:
        lines += ["", "Paired with *engine* on the same tasks:", ""]
        rows = [[path, c["only_first"], c["only_second"], f"{100 * c['difference']:+.1f} pts "
                 f"{format_interval(*c['difference_ci'], scale=100)}", f"{c['mcnemar_p']:.3g}", c["same_line"]]
                for path, c in comparison.items()]
        lines.append(markdown_table(["path", "engine passes, path fails", "path passes, engine fails",
                                     "pass@1 difference [95% CI]", "McNemar exact p", "same line as engine"], rows))
    traces = data.get("traces") or []
    if traces:
        lines += ["", f"Stage traces of the tasks the engine passes and a server path fails ({len(traces)} traced): "
                  f"the first stage whose output departs from the engine's line.", ""]
        causes = Counter((t["path"], t["cause"]) for t in traces)
        lines.append(markdown_table(["path", "first stage that departs", "tasks"],
                                    [[p, c, n] for (p, c), n in sorted(causes.items())]))
        lines += ["", "Examples (model output, whitespace shown with `repr`):", ""]
        lines.append(markdown_table(
            ["task", "path", "cause", "engine line", "server: model text after the stop rule", "server: inserted"],
            [[t["task_id"], t["path"], t["cause"], _code(t["engine"]), _code(t["raw"]), _code(t["server"])]
             for t in traces[:EXAMPLES]]))
    lines += ["", "![HumanEval](plots/humaneval.png)", ""]
    return lines


def other_humaneval_section(runs: dict[str, dict[str, Any]]) -> list[str]:
    """One row per path of the other HumanEval result files (earlier runs, other settings)."""
    lines = ["### Other HumanEval runs", ""]
    rows = []
    for name, data in runs.items():
        for path, s in data["summary"].items():
            rows.append([f"`{name}.json`", data["machine"]["commit"], data["machine"]["date"], s["tasks"], path,
                         f"{_pct(s['pass_at_1'])} {format_interval(*s['pass_at_1_ci'], scale=100)}",
                         f"{_pct(s['exact_match'])}", f"{100 * s['edit_similarity']:.1f}", f"{s['latency_p50_ms']:.0f}",
                         s["empty"]])
    lines.append(markdown_table(["file", "commit", "date", "tasks", "path", "pass@1 [95% CI]", "exact match",
                                 "edit similarity", "p50 ms", "no suggestion"], rows))
    for name, data in runs.items():
        causes = Counter((t["path"], t["cause"]) for t in data.get("traces") or [])
        if causes:
            lines.append("")
            lines.append(f"`{name}.json`, first stage departing from the engine where the engine passes and the path "
                         f"fails: " + "; ".join(f"{p}: {c} x{n}" for (p, c), n in sorted(causes.items())) + ".")
    return [*lines, ""]


def write_report(results: Path) -> Path:
    """Write RESULTS.md (and plots/) next to `results` from the result files found there."""
    plots = results.parent / "plots"
    plots.mkdir(exist_ok=True)
    replays = {name: data for name in ("small", "large", "custom") if (data := _load(results, f"replay-{name}"))}
    humaneval = _load(results, "humaneval")
    others = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(results.glob("humaneval-*.json"))}
    lines = ["# codet5-lsp benchmark results", "",
             "Written by `python -m bench report` from `bench/results/*.json`; regenerate everything with "
             "`python -m bench` (not yet timed as a whole; its parts took about 5 min (replay), 18 (HumanEval, on a loaded "
             "machine), 2 (py150), 6 (peers, quiet) and 2 (daemon load) on these 2 cores). Numbers measured on a shared, loaded machine are noisy: "
             "each run states its load.", ""]
    peers, load, heap = _load(results, "peers"), _load(results, "load"), _load(results, "heap")
    py150, summaries = _load(results, "codexglue-line"), _load(results, "summarization")
    fidelities = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(results.glob("fidelity*.json"))]
    runs = [*replays.values(), *(d for d in (humaneval, py150, *fidelities, peers, heap, load, summaries) if d and "command" in d)]
    if not runs:
        lines.append("No results yet: run `python -m bench`.")
    for data in runs:
        lines.append(f"- `{data['command'].strip()}`: {_machine_line(data['machine'])}")
    lines.append("")
    if replays:
        plot_replay(replays, plots)
        lines += replay_section(replays)
    for path in sorted(results.glob("replay-*-variants.json")):
        lines += replay.variants_markdown(path.stem.removeprefix("replay-").removesuffix("-variants"),
                                          json.loads(path.read_text(encoding="utf-8")))
    if humaneval:
        plot_humaneval(humaneval, plots)
        lines += humaneval_section(humaneval)
    if others:
        lines += other_humaneval_section(others)
    if py150:
        lines += [codexglue_line.markdown(py150), ""]
    for fidelity in fidelities:
        lines += [fidelity_markdown(fidelity), ""]
    if peers:
        plot_peers(peers, plots)
        lines += peers_section(peers)
        lines += gpu_section({p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(results.glob("peers-cuda-*.json"))})
    if heap:
        lines += heap_section(heap)
    if load:
        lines += load_section(load)
    if summaries:
        lines += [summarization.markdown(summaries), ""]
    if audit := _load(results, "faithfulness"):
        lines += [faithfulness.markdown(audit), ""]
    path = results.parent / "RESULTS.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
