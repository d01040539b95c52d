"""RESULTS.md sections for the engine-speed benchmarks: peers side by side, the bandwidth bound, daemon load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .replay import KEY_MS, LINE_END_MS
from .stats import markdown_table

GOAL_LENGTH = "1024"
GOAL_RATIOS = {"llama.cpp": 1.5, "transformers": 3.0}
GOAL_TIMES_BOUND = 2.0


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported when a plot is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ms(figures: dict[str, Any] | None, metric: str) -> str:
    if not figures:
        return "n/a"
    value = figures[metric]
    return f"{value['median']:.0f} / {value['p95']:.0f}"


def plot_peers(data: dict[str, Any], out: Path) -> Path:
    """Completion time (median) against prompt length, one line per runner and case."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    lengths = list(data["results"])
    for case, style in (("cold", "-o"), ("typing", "--s")):
        for name in data["runners"]:
            points = [(int(n), data["results"][n][case][name]["completion_ms"]["median"])
                      for n in lengths if name in data["results"][n][case]]
            if points:
                ax.plot(*zip(*points), style, label=f"{name}, {case}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([int(n) for n in lengths], labels=lengths)
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel(f"ms to {data['completion_tokens']} new tokens (median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "peers.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def peers_section(data: dict[str, Any]) -> list[str]:
    lines = ["## Engines side by side: same model, same prompts", "",
             f"SmolLM2-135M-Instruct on {data['threads']} threads, greedy, exactly {data['new_tokens']} new tokens per run "
             f"(end-of-text cannot stop it), {data['repeats']} repetitions per cell, runners interleaved repetition by "
             f"repetition. Prompts are windows of real Python source ({', '.join(Path(s).name for s in data['sources'])}) "
             f"handed to every runner as the same token ids. *First token*: the prompt pass. *Completion*: time to the "
             f"{data['completion_tokens']}th token (a typical line). *tok/s*: the decode steps after the first token. "
             f"*Cold*: nothing cached. *Typing*: the previous request's prompt with its last {data['tail_tokens']} tokens "
             "changed, each runner using its own prompt cache (ours: the server's static-prompt cache; llama.cpp: its "
             "reuse of the longest common prefix); transformers' naive path has none. Cells: median / p95 ms.", ""]
    if data.get("load"):
        lines += [f"Load during the run: mean {data['load'].get('mean')}, max {data['load'].get('max')} "
                  "(1-minute load average).", ""]
    for name, reason in data.get("skipped", {}).items():
        lines += [f"- {name}: not measured ({reason}).", ""]
    rows = []
    for length, cases in data["results"].items():
        for name in data["runners"]:
            cold, typing = cases["cold"].get(name), cases["typing"].get(name)
            cold_ratio = data["ratios"]["cold"].get(length, {}).get(name)
            typing_ratio = data["ratios"]["typing"].get(length, {}).get(name)
            rows.append([length, name, _ms(cold, "first_token_ms"), _ms(cold, "completion_ms"),
                         f"{cold['tokens_per_s']['median']:.1f}" if cold else "n/a", _ms(typing, "completion_ms"),
                         "1 (ours)" if name == data["ours"] else (f"{cold_ratio:.2f}" if cold_ratio else "n/a"),
                         "1 (ours)" if name == data["ours"] else (f"{typing_ratio:.2f}" if typing_ratio else "n/a")])
    lines += [markdown_table(["prompt tokens", "runner", "cold first token", "cold completion", "cold tok/s",
                              "typing completion", "cold ratio theirs/ours", "typing ratio theirs/ours"], rows), ""]
    lines += ["![engines side by side](plots/peers.png)", "", *goal_lines(data), ""]
    if data.get("bandwidth"):
        lines += bandwidth_lines(data["bandwidth"])
    return lines


def goal_lines(data: dict[str, Any]) -> list[str]:
    ratios = data["ratios"]["cold"].get(GOAL_LENGTH, {})
    lines = [f"Goals at {GOAL_LENGTH} prompt tokens (cold completion, ratio of medians):", ""]
    for peer, goal in GOAL_RATIOS.items():
        found = {name: value for name, value in ratios.items() if name.startswith(peer)}
        if not found:
            lines.append(f"- {peer}: not measured here.")
        for name, value in found.items():
            lines.append(f"- {name} / ours = {value:.2f} (goal >= {goal}): {'met' if value >= goal else 'missed'}.")
    return lines


def bandwidth_lines(rows: list[dict[str, Any]]) -> list[str]:
    table = [[r["threads"], f"{r['bandwidth_gbs']:.1f}", f"{r['weight_mb']:.0f}", f"{r['bound_ms']:.1f}",
              f"{r['decode_step_ms']:.1f}", f"{r['times_bound']:.2f}",
              "met" if r["times_bound"] <= GOAL_TIMES_BOUND else "missed"] for r in rows]
    return ["### Decode step against the memory-bandwidth bound", "",
            "One decode step reads every weight once (the tied embedding matrix is also the output projection), so "
            "weight bytes / memory bandwidth is the fastest a step can be. Bandwidth measured in the same run "
            "(`bench/bandwidth.py`: streaming sum and copy over 512 MB with numpy, best of 5); the decode step is "
            "ours at the shortest prompt, cold (1000 / tok/s).", "",
            markdown_table(["threads", "bandwidth GB/s", "weights MB", "bound ms/step", "measured ms/step",
                            "x bound", f"goal <= {GOAL_TIMES_BOUND}x"], table), ""]


GPU_COMMANDS = ("python -m bench peers --device cuda --compute-type int8_float16",
                "python -m bench peers --device cuda --compute-type float16")


def gpu_section(cuda_runs: dict[str, dict[str, Any]]) -> list[str]:
    """Our engine on CUDA beside transformers float16, one table per compute type, or the commands."""
    lines = ["### CUDA", ""]
    if not cuda_runs:
        return [*lines, "Not measured: no GPU was lent to the machine these results come from. On a machine with "
                "one (and CTranslate2's CUDA wheels), these add the rows:", "",
                *(f"- `{command}`" for command in GPU_COMMANDS), ""]
    for name, data in sorted(cuda_runs.items()):
        rows = []
        for length, cases in data["results"].items():
            for runner in data["runners"]:
                cold, typing = cases["cold"].get(runner), cases["typing"].get(runner)
                ratio = data["ratios"]["cold"].get(length, {}).get(runner)
                rows.append([length, runner, _ms(cold, "first_token_ms"), _ms(cold, "completion_ms"),
                             f"{cold['tokens_per_s']['median']:.1f}" if cold else "n/a", _ms(typing, "completion_ms"),
                             "1 (ours)" if runner == data["ours"] else (f"{ratio:.2f}" if ratio else "n/a")])
        lines += [f"`{data.get('command', name)}` on {data.get('machine', {}).get('gpu', 'a GPU')}"
                  f" ({data.get('machine', {}).get('date', 'date unknown')[:10]}):", ""]
        if data.get("weights"):
            lines += [f"Weights: {data['weights']}.", ""]
        lines += [markdown_table(["prompt tokens", "runner", "cold first token", "cold completion", "cold tok/s",
                                  "typing completion", "cold completion / ours"], rows), ""]
    return lines


CLOSED_LOOP = ("Each editor is a closed loop: it types a real standard-library file (`bench.soak`'s regions) but waits "
               "for each keystroke's inline completion before the next key, so nothing is cancelled and completions/s is "
               "the daemon's capacity.")
PACED = ("Each editor types a real standard-library file (`bench.soak`'s regions) at a person's pace ({:.0f}-{:.0f} ms between "
         "keys, {:,.0f}-{:,.0f} ms before each Enter), asking at every key without waiting; completions and their latency "
         "count only the requests before a pause (an Enter, or where the editor stops), what a person waits for."
         ).format(*KEY_MS, *LINE_END_MS)


def load_section(data: dict[str, Any]) -> list[str]:
    named = len({r.get("variant") for r in data["runs"]}) > 1  # several sets of editor settings (`--variants`)
    rows = [[f"{r['clients']} (`{r['variant']}`)" if named else r["clients"], r["completions"], r["cache_hits"], r["failed"],
             r["shown"], f"{r['completions_per_s']:.2f}",
             r.get("p50_ms"), r.get("p95_ms"), r.get("worst_other_p95_ms"), r["rss_peak_mb"]] for r in data["runs"]]
    greedy = any(r.get("greedy_editor") for r in data["runs"])
    return ["## Editors sharing one daemon", "",
            f"`python -m bench load`: N editors on one TCP daemon, model `{data['model']}`, "
            f"{data['seconds_per_run']:.0f} s per N, one daemon for all runs. "
            + (PACED if data.get("paced") else CLOSED_LOOP)
            + " Typed-ahead hits (answered "
            "from the suggestion already shown) are counted from each editor's `codet5.status`. Latency in ms"
            + (f"; editor 0 asks for the most the settings allow ({data.get('greedy_settings')}), and the worst p95 is the "
               "other editors'." if greedy else "; the worst p95 is the slowest editor's.")
            + (f" Load: {data['load']['mean']} mean, {data['load']['max']} max." if data.get("load") else ""), "",
            markdown_table(["editors", "completions", "typed-ahead hits", "failed", "with a suggestion", "completions/s", "p50 ms",
                            "p95 ms", "worst editor's p95 ms", "peak RSS MB"], rows), ""]


def heap_section(data: dict[str, Any]) -> list[str]:
    """Decoding speed under each glibc mmap threshold (`python -m bench.heap`)."""
    rows = [[context, name, _ms(figures, "prompt_ms"), f"{figures['decode_ms_per_token']['median']:.1f} / "
             f"{figures['decode_ms_per_token']['p95']:.1f}", f"{figures['decode_ratio_to_server']:.2f}",
             f"{figures['faults_per_token']['median']:.0f}"]
            for context, cell in data["results"].items() for name, figures in cell.items()]
    return ["### Decoding and glibc's mmap threshold", "",
            f"`{data['command'].strip()}`: the server fixes glibc's mmap threshold so that freed large buffers go back to "
            f"the OS (see docs/reliability.md). Each threshold in its own process, {data['repeats']} repetitions interleaved, "
            f"{data['threads']} threads, a prompt of `{data['source']}` then exactly {data['new_tokens']} new tokens. "
            "Cells: median / p95.", "",
            markdown_table(["prompt tokens", "mmap threshold", "prompt pass ms", "decode ms/token", "decode / server",
                            "page faults/token"], rows), ""]
