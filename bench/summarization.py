"""Code summarization quality: smoothed BLEU-4 (CodeXGLUE definition) of summarizers and a baseline.

Test sets: the held-out split of the embedded summarizer's recipe (modules never seen in
training; `build/summarizer/data/test.jsonl`, rebuilt by the recipe's data step if absent), the
head of the CodeXGLUE code-to-text Python test set (`../shared/eval/..._head130.jsonl`, read in
place), and the five-language split's held-out packages, one set per language
(`build/summarizer/polyglot/test.jsonl`, collected by `python -m quantize.summarizer polyglot`). The model sees each function's code without its docstring; CodeXGLUE's reference is its
`docstring_tokens` joined by spaces. The baseline turns the function name into a sentence
(`get_user_name` -> "Get user name."). Several summary models run side by side (by default the
embedded encoder-decoder summarizer and the default code model asked by its instruction prompt);
each one's text is cut to its first sentence and put in the language's doc comment convention, as a
hover shows it (`--as-written` also scores it before the convention; `--split valid` scores the
five-language validation split, which is for choosing, instead of its test split). Scores are means over examples
with a seeded bootstrap 95% interval; each row also has the time of one summary with the model
warm (p50/p95), which is a hover's latency.

The metric is checked first against the CodeXGLUE evaluator's own sample (it must give
9.554726113590661). `run(results_dir)` writes `summarization.json` there; `markdown(result)` is its
RESULTS.md section. `python -m bench.summarization [--summarizer DIR] [--card MODEL_CARD.md]` prints
the table (and replaces the scores section of the model card); `--summarizer` may be repeated, and
`--sample N` scores a seeded random sample of N examples of each larger set.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import math
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.summary.bleu import bleu_of_pairs, corpus_bleu
from inference.summary.summaries import first_sentence
from inference.syntax import in_convention

from .bleu import read_id_file
from .machine import machine_info

ROOT = Path(__file__).resolve().parent.parent
SUMMARIZERS = ("default-summarizer", "default")
HELD_OUT = ROOT / "build" / "summarizer" / "data"
POLYGLOT = ROOT / "build" / "summarizer" / "polyglot"
SETS = ("held-out", "codexglue", "polyglot")
EVAL = ROOT.parent / "shared" / "eval"
CODEXGLUE = EVAL / "codexglue_code2text_python_test_head130.jsonl"
SAMPLE_REFERENCE = EVAL / "codexglue_code2text_sample5_reference.txt"
SAMPLE_PREDICTIONS = EVAL / "codexglue_code2text_sample5_predictions.txt"
OFFICIAL_SAMPLE_SCORE = 9.554726113590661
RESULT_NAME = "summarization"
NO_REPEAT_NGRAM = 3
AS_WRITTEN = ", as written (no convention)"
CARD_START, CARD_END = "<!-- scores:start -->", "<!-- scores:end -->"
PAPER_NOTE = (
    "For context: the CodeT5+ paper (arXiv 2305.07922) reports 20.16 for CodeT5+ 220M on the full "
    "CodeSearchNet Python test set (14,918 functions), after fine-tuning on its 251k training pairs."
)
BOOTSTRAP_ROUNDS = 1000
SAMPLE_SEED = 0


@dataclass(frozen=True)
class Example:
    """Code without its docstring, the reference summary, the function's name and language."""

    code: str
    reference: str
    name: str
    language: str = "python"


def name_sentence(name: str) -> str:
    """The baseline summary: the function name's words as a sentence (`getUserName` -> "Get user name.")."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.strip("_"))
    words = [w.lower() for w in re.split(r"[_\s]+", spaced) if w]
    if not words:
        return ""
    return " ".join([words[0].capitalize(), *words[1:]]) + "."


def _without_docstring(code: str) -> str | None:
    """The first function of `code` without its docstring, or None if `code` does not parse."""
    from quantize.summarizer.extract import strip_docstring

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if ast.get_docstring(node, clean=False) is None:
                return code
            return strip_docstring(code.splitlines(keepends=True), node)
    return None


def codexglue_examples(path: Path) -> list[Example]:
    """CodeSearchNet records: `code` without its docstring (the space-joined `code_tokens`, which
    CodeSearchNet already stripped, when the code is not Python 3), reference `docstring_tokens`."""
    examples = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            code = _without_docstring(record["code"]) or " ".join(record["code_tokens"])
            name = record["func_name"].rsplit(".", 1)[-1]
            examples.append(Example(code, " ".join(record["docstring_tokens"]), name))
    return examples


def polyglot_examples(data_dir: Path, size: int | None, split: str = "test") -> dict[str, list[Example]]:
    """The five-language `split` (test: packages kept out of training; valid: to choose by) by
    language, each a seeded sample of `size`; {} when it was not collected (`python -m quantize.summarizer polyglot`)."""
    from quantize.summarizer.data import read_jsonl

    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        print(f"bench: {path} is missing (python -m quantize.summarizer polyglot): no other languages scored", file=sys.stderr)
        return {}
    by_language: dict[str, list[Example]] = {}
    for pair in read_jsonl(path):
        by_language.setdefault(pair.language, []).append(Example(pair.code, pair.summary, pair.name, pair.language))
    return {language: sample(examples, size) for language, examples in sorted(by_language.items())}


def held_out_examples(data_dir: Path) -> list[Example]:
    """The recipe's test split (modules kept out of training), built first if missing."""
    from quantize.summarizer.data import build_dataset, read_jsonl

    path = data_dir / "test.jsonl"
    if not path.is_file():
        from quantize.summarizer.cli import DEFAULT_SEED

        build_dataset(data_dir, DEFAULT_SEED)
    return [Example(p.code, p.summary, p.name) for p in read_jsonl(path)]


def bootstrap_interval(scores: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    rng = random.Random(seed)
    n = len(scores)
    means = sorted(sum(rng.choices(scores, k=n)) / n for _ in range(BOOTSTRAP_ROUNDS))
    return means[int(0.025 * BOOTSTRAP_ROUNDS)], means[int(0.975 * BOOTSTRAP_ROUNDS) - 1]


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]


def score(examples: Sequence[Example], summarize: Callable[[Example], str]) -> dict[str, Any]:
    """Mean smoothed BLEU-4 of `summarize` over `examples`, its 95% interval, and the time of one
    summary (mean, p50, p95)."""
    predictions, times = [], []
    for example in examples:
        started = time.perf_counter()
        predictions.append(summarize(example))
        times.append(1000 * (time.perf_counter() - started))
    scores = bleu_of_pairs([e.reference for e in examples], predictions)
    low, high = bootstrap_interval(scores)
    return {
        "examples": len(examples),
        "bleu": sum(scores) / len(scores),
        "ci95": [low, high],
        "ms_per_example": sum(times) / len(times),
        "latency_ms": {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95)},
        "samples": [{"name": e.name, "reference": e.reference, "prediction": p} for e, p in list(zip(examples, predictions))[:5]],
    }


def official_sample_score(reference: Path = SAMPLE_REFERENCE, predictions: Path = SAMPLE_PREDICTIONS) -> float:
    """The metric on the CodeXGLUE evaluator's sample (9.554726113590661 with the official script)."""
    with reference.open(encoding="utf-8") as ref, predictions.open(encoding="utf-8") as pred:
        return corpus_bleu(read_id_file(ref), {rid: texts[0] for rid, texts in read_id_file(pred).items()})


def no_repeat_summarizer(model: Any, ngram: int, cpu_threads: int) -> Callable[[Example], str]:
    """The engine's prompt for `model` (a summarizing `CodeModel`), decoded greedily by CTranslate2
    with `no_repeat_ngram_size=ngram`: what the server would write with that option."""
    import ctranslate2

    from inference.models.prompt_formats import summary_prompt

    translator = ctranslate2.Translator(str(model.path), compute_type=model.compute_type, intra_threads=cpu_threads)
    tokenizer = model.tokenizer

    prefix = tokenizer.tokens(tokenizer.encode(model.summary_prefix))

    def summarize(example: Example) -> str:
        source = summary_prompt(tokenizer, example.code, model.preset.max_context_tokens).source_ids
        result = translator.translate_batch([tokenizer.tokens(source)], beam_size=1, max_decoding_length=48 + len(prefix),
                                            no_repeat_ngram_size=ngram, max_input_length=0,
                                            target_prefix=[prefix] if prefix else None)
        return tokenizer.decode(tokenizer.ids(result[0].hypotheses[0][len(prefix):])).strip()

    return summarize


def model_kind(model: Any) -> str:
    """How a summarizing `CodeModel` writes summaries, for the table."""
    if model.preset.architecture.value == "decoder":
        return "decoder-only, instruct prompt"
    return "encoder-decoder"


def written_text(model: Any, code: str) -> str:
    """The summary as the model writes it: its text cut to its first sentence, on one line."""
    return first_sentence(model.summarize(code).read())[0]


def shown(summary: str, language: str, name: str) -> str:
    """A written summary as a hover shows it and a doc comment gets it: in the language's convention."""
    return in_convention(summary, language, name)


def hover_text(model: Any, code: str, language: str, name: str) -> str:
    """The summary a hover shows of the function `name` in `language`."""
    return shown(written_text(model, code), language, name)


def sample(examples: list[Example], size: int | None) -> list[Example]:
    """A seeded random sample of `size` examples in their original order (all when `size` is None or larger)."""
    if size is None or size >= len(examples):
        return examples
    keep = sorted(random.Random(SAMPLE_SEED).sample(range(len(examples)), size))
    return [examples[i] for i in keep]


def model_systems(summarizers: Sequence[str], cpu_threads: int, as_written: bool = False,
                  compute_type: str = "auto") -> tuple[dict[str, Callable[[Example], str]], list[dict[str, str]]]:
    """The systems of the summary models `summarizers` (model specs, loaded in `compute_type`) that
    load here, and a description of each model; models that are not installed are skipped with a
    message. With `as_written`, each model's summaries also as it writes them, before `shown` (the
    same generations)."""
    from inference import CodeModel

    systems: dict[str, Callable[[Example], str]] = {}
    models = []
    for spec in summarizers:
        try:
            model = CodeModel(spec, compute_type=compute_type, cpu_threads=cpu_threads)
        except FileNotFoundError as exc:
            print(f"bench: {exc}: {spec} not scored", file=sys.stderr, flush=True)
            continue
        if not model.can_summarize:
            raise ValueError(f"{spec} ({model.preset.name}) cannot summarize code")
        label = f"{model.preset.name} ({model_kind(model)}{'' if compute_type == 'auto' else ', ' + model.compute_type})"
        written = _Remembered(functools.partial(lambda m, e: written_text(m, e.code), model))
        systems[label] = functools.partial(lambda w, e: shown(w(e), e.language, e.name), written)
        if as_written:
            systems[label + AS_WRITTEN] = written
        if model_kind(model) == "encoder-decoder":
            no_repeat = no_repeat_summarizer(model, NO_REPEAT_NGRAM, cpu_threads)
            systems[f"{label}, no_repeat_ngram_size {NO_REPEAT_NGRAM}"] = functools.partial(
                lambda n, e: shown(n(e), e.language, e.name), no_repeat)
        models.append({"spec": spec, "preset": model.preset.name, "kind": model_kind(model), "path": str(model.path),
                       "runtime": model.runtime, "compute_type": model.compute_type})
    return systems, models


class _Remembered:
    """A system whose answer for an example is computed once: another system reuses it."""

    def __init__(self, summarize: Callable[[Example], str]) -> None:
        self.summarize = summarize
        self.answers: dict[Example, str] = {}

    def __call__(self, example: Example) -> str:
        if example not in self.answers:
            self.answers[example] = self.summarize(example)
        return self.answers[example]


def evaluate(summarizers: Sequence[str], held_out_dir: Path, codexglue: Path, cpu_threads: int = 2,
             limit: int | None = None, size: int | None = None, polyglot_dir: Path = POLYGLOT,
             sets: Sequence[str] = SETS, polyglot_split: str = "test", as_written: bool = False,
             compute_type: str = "auto") -> dict[str, Any]:
    """Scores of the summary models `summarizers` (model specs) and the name baseline on the test
    `sets` (the first `limit` examples, or a seeded sample of `size`; the five-language split is
    one set per language, from its `polyglot_split`), with the metric's sample check. Models this
    installation lacks are left out (the baseline is always scored). `as_written`, `compute_type`: `model_systems`'."""
    sample_score = official_sample_score()
    print(f"bench: smoothed BLEU-4 on the CodeXGLUE evaluator sample: {sample_score!r}", file=sys.stderr, flush=True)
    if abs(sample_score - OFFICIAL_SAMPLE_SCORE) > 1e-9:
        raise RuntimeError(f"the BLEU implementation gives {sample_score} on the official sample, not {OFFICIAL_SAMPLE_SCORE}")

    systems, models = model_systems(summarizers, cpu_threads, as_written, compute_type)
    systems["baseline: function name"] = lambda e: name_sentence(e.name)
    chosen: dict[str, list[Example]] = {}
    if "held-out" in sets:
        chosen["held-out modules (recipe test split)"] = sample(held_out_examples(held_out_dir)[:limit], size)
    if "codexglue" in sets:
        chosen["CodeXGLUE code-to-text Python, first 130"] = sample(codexglue_examples(codexglue)[:limit], size)
    if "polyglot" in sets:
        for language, examples in polyglot_examples(polyglot_dir, size, polyglot_split).items():
            chosen[f"{'held-out' if polyglot_split == 'test' else polyglot_split} packages, {language}"] = examples[:limit]
    rows = []
    for set_name, examples in chosen.items():
        for system, summarize in systems.items():
            print(f"bench: summarization {system} on {set_name} ({len(examples)})", file=sys.stderr, flush=True)
            summarize(examples[0])  # warm: the rows time hovers on a loaded model
            row = {"test_set": set_name, "system": system, **score(examples, summarize)}
            if system.endswith(AS_WRITTEN):
                row["latency_ms"] = None  # the generations of the row above, not timed again
            rows.append(row)
    return {"models": models, "official_sample": sample_score,
            "decoding": f"greedy, {cpu_threads} threads, " + "; ".join(f"{m['preset']} on {m['runtime']} in {m['compute_type']}" for m in models),
            "rows": rows, "note": PAPER_NOTE}


def run(results_dir: Path, summarizers: Sequence[str] = SUMMARIZERS, limit: int | None = None, size: int | None = None) -> dict[str, Any]:
    """Evaluate the summarizers and the baseline; write `results_dir/summarization.json`."""
    machine = machine_info()
    result = {**evaluate(summarizers, HELD_OUT, CODEXGLUE, limit=limit, size=size), "machine": machine}
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{RESULT_NAME}.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"bench: wrote {path}", file=sys.stderr)
    return result


def table(result: dict[str, Any]) -> str:
    """The markdown table of a result, the metric's check on the official sample and the paper's reference point."""
    lines = [
        "| test set | system | examples | smoothed BLEU-4 | 95% CI | hover p50 / p95 ms |",
        "|---|---|---:|---:|---|---:|",
    ]
    for row in result["rows"]:
        low, high = row["ci95"]
        latency = row.get("latency_ms")
        timing = f"{latency['p50']:,.0f} / {latency['p95']:,.0f}" if latency and not row["system"].startswith("baseline") else ""
        lines.append(f"| {row['test_set']} | {row['system']} | {row['examples']} | {row['bleu']:.2f} | {low:.2f}-{high:.2f} | {timing} |")
    check = (f"Metric check on the CodeXGLUE evaluator's sample: {result['official_sample']!r} "
             f"(the official script: {OFFICIAL_SAMPLE_SCORE!r}).")
    return "\n".join(lines) + "\n\n" + check + " " + result["note"] + "\n"


def markdown(result: dict[str, Any]) -> str:
    """The RESULTS.md section of a `run` result: the table, the metric check and a few predictions."""
    first_set = result["rows"][0]["test_set"]
    examples = "\n".join(
        f"- {r['system']}, `{s['name']}`: {s['prediction']!r} (reference: {s['reference']!r})"
        for r in result["rows"] if r["test_set"] == first_set and "no_repeat" not in r["system"] for s in r["samples"][:3]
    )
    machine = result.get("machine", {})
    models = ", ".join(f"`{Path(m['path']).name}` ({m['kind']})" for m in result["models"]) or "no summary model (none is installed)"
    load = result.get("load")
    loaded = f" Load average while it ran: {load['mean']} mean, {load['max']} max." if load else ""
    notes = f"\n{result['notes']}\n" if result.get("notes") else ""  # added by hand: how the prompt was chosen, caveats
    return (
        "## Docstring summaries\n\n"
        f"Smoothed BLEU-4 (CodeXGLUE code-to-text definition) of {models}, {result['decoding']}, and of a baseline that "
        f"turns the function name into a sentence, with 95% bootstrap intervals. Commit {machine.get('commit', 'unknown')}, "
        f"{machine.get('date', '')}.{loaded}\n\n" + table(result) + notes + "\nFirst held-out predictions:\n\n" + examples + "\n"
    )


def write_into_card(card: Path, text: str) -> None:
    """Replace what lies between the scores markers of `card` with `text`."""
    content = card.read_text(encoding="utf-8")
    start, end = content.index(CARD_START) + len(CARD_START), content.index(CARD_END)
    card.write_text(content[:start] + "\n" + text + content[end:], encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summarizer", action="append", help="a summary model; repeat for several "
                        f"(default: {', '.join(SUMMARIZERS)})")
    parser.add_argument("--held-out", type=Path, default=HELD_OUT, help="the recipe's data directory (test.jsonl)")
    parser.add_argument("--codexglue", type=Path, default=CODEXGLUE, help="CodeXGLUE code-to-text jsonl")
    parser.add_argument("--polyglot", type=Path, default=POLYGLOT, help="the five-language data directory (test.jsonl)")
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="the five-language split to score (default test; valid is for choosing)")
    parser.add_argument("--as-written", action="store_true", help="also score each model's summaries as it "
                        "writes them, before they are put in the language's doc comment convention")
    parser.add_argument("--compute-type", default="auto", help="load the summary models in this compute type "
                        "(e.g. int4: the embedded default's 4-bit build)")
    parser.add_argument("--sets", default=",".join(SETS), help=f"test sets to score, comma-separated (default {','.join(SETS)})")
    parser.add_argument("--limit", type=int, help="only the first N examples of each set")
    parser.add_argument("--sample", type=int, help="a seeded random sample of N examples of each larger set")
    parser.add_argument("--card", type=Path, help="also write the table into this model card's scores section")


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run with parsed `add_arguments` options; print the table (and write it into the card)."""
    sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        raise SystemExit(f"unknown test sets {unknown}: choose from {', '.join(SETS)}")
    result = evaluate(args.summarizer or SUMMARIZERS, args.held_out, args.codexglue, limit=args.limit, size=args.sample,
                      polyglot_dir=args.polyglot, sets=sets, polyglot_split=args.split, as_written=args.as_written,
                      compute_type=args.compute_type)
    text = table(result)
    print(text)
    if args.card:
        write_into_card(args.card, text)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summarization", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--json", type=Path, help="write the full result (with sample predictions) here")
    args = parser.parse_args(argv)
    result = run_from_args(args)
    if args.json:
        args.json.write_text(json.dumps({**result, "machine": machine_info()}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
