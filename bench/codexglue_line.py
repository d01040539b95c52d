"""CodeXGLUE line completion (py150): the official evaluator, and our model scored on its sample.

The evaluator follows CodeXGLUE's `CodeCompletion-line/evaluator/evaluator.py`: literal
placeholders are written back (`post_process`), exact match is `pred.split() == gt.split()`,
edit similarity is fuzzywuzzy's `fuzz.ratio` (rounded per sample) averaged, both printed as
`Edit sim: X, EM: Y`. It must reproduce the official sample figures before it scores anything.

The py150 sample is in the pre-2021 format: the space-joined tokens of Python's `tokenize`
(comments and indentation dropped, `<EOL>` for line ends, `<s>` first), string literals kept
verbatim up to `LONG_STRING` characters and written as empty ones (`''`, `u""`) beyond. Our
model reads source code, so the input is turned back into code (spacing and indentation
rebuilt by rule, placeholders written back), the next line is completed, and the line is
tokenized again into the same form before it is scored.
"""

from __future__ import annotations

import asyncio
import io
import json
import keyword
import re
import sys
import time
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from inference import CodeModel
from inference.completion.options import CompletionOptions
from inference.completion.pipeline import CompletionPipeline, CompletionRequest, DirectWorker
from inference.completion.typeahead import TypeaheadCache

from .humaneval import first_line
from .metrics import fuzz_ratio
from .stats import (
    bootstrap_interval,
    format_interval,
    markdown_table,
    mcnemar_exact,
    mean,
    median,
    p95,
    wilson_interval,
)

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
PY150_ANSWERS = EVAL_DIR / "codexglue_line_py150_sample100_answers.json"
PY150_PREDICTIONS = EVAL_DIR / "codexglue_line_py150_sample100_predictions.txt"
JAVA_ANSWERS = EVAL_DIR / "codexglue_line_java_sample5_answers.json"
JAVA_PREDICTIONS = EVAL_DIR / "codexglue_line_java_sample5_predictions.txt"
OFFICIAL_CHECKS = (
    (PY150_ANSWERS, PY150_PREDICTIONS, "Edit sim: 71.05, EM: 39.0"),
    (JAVA_ANSWERS, JAVA_PREDICTIONS, "Edit sim: 43.8, EM: 0.0"),
)
RESULTS = Path(__file__).resolve().parent / "results"
PATHS = ("engine", "server")
LONG_STRING = 16  # the longest string literal (quotes and prefix included) the py150 sample keeps verbatim
CONTEXT_TOKENS = 1024  # the engine path's prompt window, as the server's default context budget
MAX_NEW_TOKENS = 48
INDENT = "    "
_LINE_DONE = re.compile(r"\S[^\n]*\n")


class EvaluatorCheckFailed(RuntimeError):
    """The evaluator does not reproduce an official sample's figures: nothing may be scored."""


@dataclass(frozen=True)
class Sample:
    input: str  # space-joined tokens of the code before the cursor
    gt: str  # space-joined tokens of the rest of the line


def load_answers(path: Path = PY150_ANSWERS, limit: int | None = None) -> list[Sample]:
    """The samples of a CodeXGLUE line-completion answers file (one JSON object a line)."""
    with open(path, encoding="utf-8") as lines:
        samples = [Sample(row["input"], row["gt"]) for row in map(json.loads, lines)]
    return samples[:limit] if limit is not None else samples


# --- the official evaluator -------------------------------------------------------------------

_LITERAL = re.compile(r"<(STR|NUM|CHAR)_LIT(?::(.*?))?>", re.S)
_BARE_LITERAL = {"STR": "", "NUM": "0", "CHAR": ""}


def post_process(code: str) -> str:
    """CodeXGLUE's placeholder rewrite: `<NUM_LIT>` -> 0, `<STR_LIT>`/`<CHAR_LIT>` -> "", `<X_LIT:v>` -> v."""
    return _LITERAL.sub(lambda m: _BARE_LITERAL[m.group(1)] if m.group(2) is None else m.group(2), code)


def sample_scores(prediction: str, gt: str) -> tuple[bool, int]:
    """(exact match, edit similarity 0-100) of one prediction, as the official evaluator scores it."""
    prediction, gt = post_process(prediction.strip()), post_process(gt)
    return prediction.split() == gt.split(), fuzz_ratio(prediction, gt)


def official_scores(predictions: Sequence[str], gts: Sequence[str]) -> tuple[float, float]:
    """(edit sim, EM), each rounded to 2 decimals as the official evaluator prints them."""
    if len(predictions) != len(gts):
        raise ValueError(f"{len(predictions)} predictions for {len(gts)} answers")
    scores = [sample_scores(p, g) for p, g in zip(predictions, gts)]
    return round(sum(s for _, s in scores) / len(gts), 2), round(sum(e for e, _ in scores) / len(gts) * 100, 2)


def official_line(edit_sim: float, em: float) -> str:
    return f"Edit sim: {edit_sim}, EM: {em}"


def evaluate_files(answers: Path, predictions: Path) -> str:
    """The official evaluator's output line for an answers file and a predictions file."""
    gts = [s.gt for s in load_answers(answers)]
    preds = Path(predictions).read_text(encoding="utf-8").splitlines()
    return official_line(*official_scores(preds, gts))


def check_official() -> list[str]:
    """Score the official samples; raise EvaluatorCheckFailed unless each prints its published line."""
    lines = []
    for answers, predictions, expected in OFFICIAL_CHECKS:
        got = evaluate_files(answers, predictions)
        if got != expected:
            raise EvaluatorCheckFailed(f"{answers.name}: evaluator printed {got!r}, the official one {expected!r}")
        lines.append(f"{answers.name}: {got}")
    return lines


# --- CodeXGLUE tokens -> source code ----------------------------------------------------------

_STRING_START = re.compile(r"[a-zA-Z]{0,3}('''|\"\"\"|'|\")")
_NO_SPACE_BEFORE = frozenset({".", ",", ")", "]", "}", ":", ";"})
_NO_SPACE_AFTER = frozenset({".", "(", "[", "{", "~"})
_OPENERS, _CLOSERS = "([{", ")]}"
_UNARY = frozenset({"-", "+", "*", "**"})
_KEYWORDS = frozenset(keyword.kwlist) | {"print", "exec"}
_DEDENT_AFTER = frozenset({"return", "raise", "pass", "continue", "break"})
_CONTINUES = {
    "else": frozenset({"if", "elif", "for", "while", "try", "except"}),
    "elif": frozenset({"if", "elif"}),
    "except": frozenset({"try", "except"}),
    "finally": frozenset({"try", "except", "else"}),
}


def source_literal(token: str) -> str:
    """A token with CodeXGLUE literal placeholders written back as source text."""
    def value(m: re.Match[str]) -> str:
        if m.group(2) is None:
            return _BARE_LITERAL[m.group(1)]
        return m.group(2).replace("U+0020", " ").replace("U+002C", ",")

    return _LITERAL.sub(value, token)


def _string_closed(token: str) -> bool:
    """Whether a token that starts a string literal also ends it."""
    start = _STRING_START.match(token)
    assert start is not None
    quote, body = start.group(1), token[start.end():]
    i = 0
    while i < len(body):
        if body[i] == "\\":
            i += 2
        elif body.startswith(quote, i):
            return i + len(quote) == len(body)
        else:
            i += 1
    return False


def split_lines(tokens: Sequence[str]) -> list[list[str]]:
    """Token lines between `<EOL>`s (`<s>`/`</s>` dropped), a string split at its spaces joined again."""
    lines: list[list[str]] = [[]]
    pending: str | None = None
    for token in tokens:
        if token in ("<s>", "</s>"):
            continue
        if pending is not None and token != "<EOL>":
            pending += " " + token
            if _string_closed(pending):
                lines[-1].append(pending)
                pending = None
            continue
        if pending is not None:
            lines[-1].append(pending)
            pending = None
        if token == "<EOL>":
            lines.append([])
        elif _STRING_START.match(token) and not _string_closed(token):
            pending = token
        else:
            lines[-1].append(token)
    if pending is not None:
        lines[-1].append(pending)
    return lines


def _is_name(token: str) -> bool:
    return token.isidentifier() and token not in _KEYWORDS


def join_tokens(tokens: Sequence[str], depth: int = 0) -> str:
    """One line's tokens as code, spaced as people write it (`f(a, b=1)`, `x[0].y`, `-1`)."""
    out: list[str] = []
    brackets: list[str] = ["("] * depth
    for i, token in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        before = tokens[i - 2] if i > 1 else None
        if prev is None:
            space = False
        elif token == "." and prev in _KEYWORDS or prev == "." and token in _KEYWORDS:
            space = True  # `from . import x`
        elif token in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER:
            space = False
        elif token in ("(", "[") and (_is_name(prev) or prev[-1] in _CLOSERS + "'\""):
            space = False
        elif (token == "=" or prev == "=") and brackets and brackets[-1] == "(":
            space = False
        elif prev in _UNARY and (before is None or before in _OPENERS or before in (",", "=", ":", "return", "lambda")
                                 or before in _UNARY or (not before.isidentifier() and before[-1] in "=<>!%&|^/")):
            space = False
        elif prev == "@" and i == 1:
            space = False
        else:
            space = True
        out.append((" " if space else "") + source_literal(token))
        if token in _OPENERS:
            brackets.append(token)
        elif token in _CLOSERS and brackets:
            brackets.pop()
    return "".join(out)


def _bracket_depth(tokens: Iterable[str], depth: int) -> int:
    for token in tokens:
        if token in _OPENERS:
            depth += 1
        elif token in _CLOSERS:
            depth = max(0, depth - 1)
    return depth


class Indenter:
    """Guesses each line's indentation, which CodeXGLUE's tokens no longer carry.

    A line ending with ":" opens a block; `return`/`raise`/`pass`/`continue`/`break` close
    one; `else`/`elif`/`except`/`finally` go back to their `if`/`try`; `def`, `class` and
    decorators go back to the innermost class (a `class Meta` stays inside its class);
    lines inside open brackets are continuation lines, one level deeper.
    """

    def __init__(self) -> None:
        self.blocks: list[str] = []  # the first token of each open block's header ("Meta" for `class Meta`)
        self.depth = 0  # brackets open at the end of the last line
        self.statement: str = ""  # first token of the statement in progress
        self.opened = False  # the last statement opened a block
        self.closed = False  # the last statement ended its block (return, pass, ...)
        self.decorated = False  # the last statement was a decorator

    def place(self, tokens: Sequence[str]) -> int:
        """The indentation level of the next line, which starts with `tokens` (may be empty)."""
        if self.depth > 0:
            return len(self.blocks) + 1
        first = tokens[0] if tokens else ""
        second = tokens[1] if len(tokens) > 1 else ""
        if first in _CONTINUES and self.blocks:
            while self.blocks and self.blocks.pop() not in _CONTINUES[first]:
                pass
        elif first == "class" and second != "Meta" and not self.opened and not self.decorated:
            self.blocks.clear()
        elif first in ("def", "class", "@") and not self.opened and not self.decorated:
            while self.blocks and self.blocks[-1] != "class":
                self.blocks.pop()
        elif first == "if" and second == "__name__":
            self.blocks.clear()
        elif self.closed and self.blocks:
            self.blocks.pop()
        return len(self.blocks)

    def advance(self, tokens: Sequence[str]) -> None:
        """Take in a placed line."""
        if self.depth == 0 and tokens:
            self.statement = "Meta" if tokens[:2] == ["class", "Meta"] else tokens[0]  # a nested class holds no defs
        self.depth = _bracket_depth(tokens, self.depth)
        if self.depth == 0 and tokens:
            self.opened = tokens[-1] == ":"
            self.closed = self.statement in _DEDENT_AFTER
            self.decorated = self.statement == "@"
            if self.opened:
                self.blocks.append(self.statement)


def detokenize(text: str) -> tuple[str, list[str]]:
    """Source code for a sample's input (ending where the completion starts), and the tokens of its last line.

    When the input ends with `<EOL>`, the code ends with the next line's guessed indentation.
    """
    lines = split_lines(text.split())
    indenter = Indenter()
    out = []
    for i, tokens in enumerate(lines):
        depth = indenter.depth
        level = indenter.place(tokens)
        code = INDENT * level + join_tokens(tokens, depth)
        out.append(code)
        if i < len(lines) - 1:
            indenter.advance(tokens)
    return "\n".join(out), lines[-1]


# --- source code -> CodeXGLUE tokens ----------------------------------------------------------

def _string_token(literal: str) -> str:
    if len(literal) <= LONG_STRING:
        return literal
    start = _STRING_START.match(literal)
    assert start is not None
    prefix = literal[: start.start(1)]
    return prefix + start.group(1)[0] * 2


def code_tokens(code: str) -> list[str]:
    """Python source as py150 (pre-2021) tokens: comments and indentation dropped, `<EOL>` between lines.

    Code that does not tokenize to the end (an unclosed bracket) keeps the tokens read before
    the failure; an unclosed quote is read as tokenize reads it, an error token of its own.
    """
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.STRING:
                out.append(_string_token(tok.string))
            elif tok.type in (tokenize.NEWLINE, tokenize.NL):
                if out and out[-1] != "<EOL>":
                    out.append("<EOL>")
            elif tok.type in (tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
                continue
            elif value := " ".join(tok.string.split()):
                out.append(value)
    except (tokenize.TokenError, IndentationError):
        pass
    while out and out[-1] == "<EOL>":
        out.pop()
    return out


def predicted_tokens(line_prefix: Sequence[str], line: str) -> list[str]:
    """The tokens a completed line adds after `line_prefix` (the tokens already on it).

    Where the completion merged into the last prefix token, the tokens from the first one
    that differs are the prediction.
    """
    tokens = [t for t in code_tokens(line.strip()) if t != "<EOL>"]
    shared = 0
    while shared < min(len(tokens), len(line_prefix)) and tokens[shared] == line_prefix[shared]:
        shared += 1
    return tokens[shared:]


# --- completing the samples -------------------------------------------------------------------

def window(code: str, count_tokens: Callable[[str], int], budget: int = CONTEXT_TOKENS) -> str:
    """The end of `code` that fits `budget` model tokens, starting at a line start."""
    lines = code.splitlines(keepends=True)
    used, start = 0, len(lines)
    while start > 0:
        cost = count_tokens(lines[start - 1])
        if used + cost > budget and start < len(lines):
            break
        used += cost
        start -= 1
    return "".join(lines[start:])


def engine_line(model: CodeModel, code: str, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """The bare engine's rest of the line: greedy from the windowed code, cut at the first line end."""
    stream = model.complete(window(code, model.count_tokens), max_new_tokens=max_new_tokens,
                            stop=lambda text: _LINE_DONE.search(text) is not None)
    return first_line(stream.read())


@dataclass
class Prediction:
    index: int
    path: str
    completion: str  # the text the path wrote after the cursor
    prediction: str  # its tokens, space-joined, as scored
    latency_ms: float
    exact: bool
    similarity: int  # fuzz.ratio, 0-100


class Runner:
    """Completes samples by the bare engine and by the server's pipeline with one model."""

    def __init__(self, model: CodeModel, options: CompletionOptions) -> None:
        self.model = model
        self.options = options
        self.pipeline = CompletionPipeline(TypeaheadCache())
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def predict(self, index: int, sample: Sample, path: str) -> Prediction:
        code, line_prefix = detokenize(sample.input)
        cursor_line = code[code.rfind("\n") + 1:]
        start = time.perf_counter()
        if path == "engine":
            completion = engine_line(self.model, code)
        else:
            uri = f"file:///codexglue/py150/{index}.py"
            request = CompletionRequest(uri, code, code.count("\n"), len(cursor_line), "python", self.options)
            suggestion = self.loop.run_until_complete(self.pipeline.suggest(request, DirectWorker(self.model)))
            completion = first_line(suggestion.text) if suggestion is not None else ""
        latency = (time.perf_counter() - start) * 1000
        prediction = " ".join(predicted_tokens(line_prefix, cursor_line + completion))
        exact, similarity = sample_scores(prediction, sample.gt)
        return Prediction(index, path, completion, prediction, round(latency, 1), exact, similarity)


def summarize(predictions: list[Prediction], gts: Sequence[str]) -> dict[str, object]:
    """EM and edit sim with 95% intervals, the official line for these predictions, latency."""
    n = len(predictions)
    exact = sum(p.exact for p in predictions)
    similarity = [float(p.similarity) for p in predictions]
    latency = [p.latency_ms for p in predictions]
    return {
        "samples": n,
        "exact": exact,
        "exact_match": exact / n,
        "exact_match_ci": wilson_interval(exact, n),
        "edit_sim": mean(similarity),
        "edit_sim_ci": bootstrap_interval(similarity, mean),
        "official": official_line(*official_scores([p.prediction for p in predictions], gts)),
        "empty": sum(not p.prediction for p in predictions),
        "latency_p50_ms": median(latency),
        "latency_p95_ms": p95(latency),
    }


def compare(first: list[Prediction], second: list[Prediction]) -> dict[str, object]:
    """Paired comparison of two runs on the same samples: EM discordance (McNemar), edit-sim difference."""
    only_first = sum(a.exact and not b.exact for a, b in zip(first, second, strict=True))
    only_second = sum(b.exact and not a.exact for a, b in zip(first, second))
    pairs = [(float(a.similarity), float(b.similarity)) for a, b in zip(first, second)]

    def difference(sample: Sequence[tuple[float, float]]) -> float:
        return sum(b - a for a, b in sample) / len(sample)

    return {
        "only_first": only_first,
        "only_second": only_second,
        "mcnemar_p": mcnemar_exact(only_first, only_second),
        "edit_sim_difference": difference(pairs),
        "edit_sim_difference_ci": bootstrap_interval(pairs, difference),
        "same_prediction": sum(a.prediction == b.prediction for a, b in zip(first, second)),
    }


def score(model: CodeModel, samples: list[Sample], paths: Iterable[str] = PATHS,
          options: CompletionOptions | None = None, progress_every: int = 25) -> dict[str, object]:
    """Run every path on every sample (interleaved) and summarize; checks the evaluator first."""
    checks = check_official()
    paths = list(paths)
    if unknown := [p for p in paths if p not in PATHS]:
        raise ValueError(f"unknown paths {unknown}; choose from {PATHS}")
    options = options or CompletionOptions()
    runner = Runner(model, options)
    by_path: dict[str, list[Prediction]] = {p: [] for p in paths}
    started = time.perf_counter()
    try:
        for i, sample in enumerate(samples):
            for path in paths:
                by_path[path].append(runner.predict(i, sample, path))
            if (i + 1) % progress_every == 0 or i + 1 == len(samples):
                done = " | ".join(f"{p} EM {sum(x.exact for x in by_path[p])}/{i + 1}" for p in paths)
                print(f"[{i + 1}/{len(samples)}] py150 {done} | {time.perf_counter() - started:.0f}s elapsed",
                      file=sys.stderr, flush=True)
    finally:
        runner.close()
    gts = [s.gt for s in samples]
    result: dict[str, object] = {
        "evaluator_checks": checks,
        "samples": len(samples),
        "paths": paths,
        "settings": {"context_tokens": options.context_tokens, "max_new_tokens": options.max_new_tokens,
                     "completion_mode": options.mode, "engine_window_tokens": CONTEXT_TOKENS},
        "seconds": round(time.perf_counter() - started, 1),
        "summary": {p: summarize(preds, gts) for p, preds in by_path.items()},
        "predictions": {p: [asdict(x) for x in preds] for p, preds in by_path.items()},
    }
    if "engine" in paths and "server" in paths:
        result["comparison"] = compare(by_path["engine"], by_path["server"])
    return result


def run(model: CodeModel, *, paths: Iterable[str] = PATHS, limit: int | None = None, options: CompletionOptions | None = None,
        results: Path = RESULTS, name: str = "codexglue-line") -> dict[str, object]:
    """Score `model` on the py150 sample and write `results/<name>.json`."""
    result = score(model, load_answers(PY150_ANSWERS, limit), paths, options)
    result["data"] = str(PY150_ANSWERS)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def markdown(result: dict[str, object]) -> str:
    """The report section for a `run` result."""
    summary: dict[str, dict[str, object]] = result["summary"]  # type: ignore[assignment]
    rows = []
    for path, s in summary.items():
        rows.append([path, f"{100 * s['exact_match']:.1f}% {format_interval(*s['exact_match_ci'], scale=100)}",
                     f"{s['edit_sim']:.1f} {format_interval(*s['edit_sim_ci'])}", f"`{s['official']}`",
                     s["empty"], round(s["latency_p50_ms"]), round(s["latency_p95_ms"])])
    parts = [
        "## CodeXGLUE line completion (py150 sample)",
        "",
        f"{result['samples']} samples of `{Path(str(result['data'])).name}` (read at run time). The evaluator is "
        "CodeXGLUE's (exact match `pred.split() == gt.split()`, edit sim `fuzz.ratio` rounded per sample) and "
        "reproduced the official sample figures before scoring: "
        + "; ".join(f"`{c}`" for c in result["evaluator_checks"]) + ". "  # type: ignore[union-attr]
        "The tokenized input is turned back into code (spacing and indentation rebuilt by rule), the model "
        "completes the line, and the line is tokenized again with Python's `tokenize` into the same form. "
        f"*engine*: `CodeModel.complete` on the last {CONTEXT_TOKENS} tokens of the code (line-snapped), cut at the "
        "first line end. *server*: `CompletionPipeline.suggest` with the cursor at the end of the document, "
        "server defaults. Intervals: Wilson 95% for EM, bootstrap 95% for edit sim. For scale: the official sample "
        "predictions score EM 39.0 / edit sim 71.05 on these samples, and CodeT5+ 220M finetuned on py150 reports "
        "EM 43.42 / edit sim 73.69 on the full test set (arXiv 2305.07922); our model is not finetuned for it.",
        "",
        markdown_table(["path", "EM [95% CI]", "edit sim [95% CI]", "official evaluator", "empty", "p50 ms", "p95 ms"],
                       rows),
    ]
    if "comparison" in result:
        c: dict[str, object] = result["comparison"]  # type: ignore[assignment]
        parts += ["", f"Server vs engine on the same samples: EM only engine {c['only_first']}, only server "
                      f"{c['only_second']} (McNemar exact p {c['mcnemar_p']:.3g}); edit sim difference "
                      f"{c['edit_sim_difference']:+.1f} {format_interval(*c['edit_sim_difference_ci'])}; "
                      f"same prediction {c['same_prediction']} of {result['samples']}."]
    return "\n".join(parts) + "\n"
