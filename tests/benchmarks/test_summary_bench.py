"""The summarization bench's pieces that need no model: the seeded sample, the latency
percentiles and column, and the faithfulness audit's choice of functions."""

from __future__ import annotations

from pathlib import Path

from bench.faithfulness import functions_without_docstrings, sample_functions
from bench.summarization import AS_WRITTEN, Example, percentile, polyglot_examples, sample, shown, table
from quantize.summarizer.data import write_jsonl
from quantize.summarizer.extract import Pair


def test_the_sample_is_seeded_and_keeps_the_order() -> None:
    examples = [Example(f"def f{i}(): pass", "Do.", f"f{i}") for i in range(50)]
    picked = sample(examples, 10)
    assert picked == sample(examples, 10) and len(picked) == 10
    assert [examples.index(e) for e in picked] == sorted(examples.index(e) for e in picked)
    assert sample(examples, None) == examples == sample(examples, 80)


def test_the_five_language_split_is_one_seeded_set_per_language(tmp_path: Path) -> None:
    pairs = [Pair(f"fn f{i}() {{}}", "Do it now.", f"f{i}", f"debian:p{i % 3}:x", ["go", "rust", "java"][i % 3]) for i in range(30)]
    write_jsonl(tmp_path / "test.jsonl", pairs)
    sets = polyglot_examples(tmp_path, 4)
    assert list(sets) == ["go", "java", "rust"] and all(len(examples) == 4 for examples in sets.values())
    assert {e.name for e in sets["go"]} <= {p.name for p in pairs if p.language == "go"}
    assert sets == polyglot_examples(tmp_path, 4)
    assert polyglot_examples(tmp_path / "missing", 4) == {}
    assert {e.language for e in sets["rust"]} == {"rust"}
    write_jsonl(tmp_path / "valid.jsonl", pairs[:3])
    assert [e.name for es in polyglot_examples(tmp_path, 4, "valid").values() for e in es] == ["f0", "f2", "f1"]


def test_summaries_are_scored_as_a_hover_shows_them() -> None:
    assert shown("Return the sum.", "java", "add") == shown("Return the sum.", "typescript", "add") == "Returns the sum."
    assert shown("Return the sum.", "go", "Add") == "Add returns the sum."
    assert shown("Return the sum.", "rust", "add") == shown("Return the sum.", "javascript", "add") == "Return the sum."


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)
    assert percentile([7.0], 0.95) == 7.0


def test_the_table_has_hover_latency_for_models_only() -> None:
    row = {"test_set": "held-out", "examples": 2, "bleu": 12.345, "ci95": [10.0, 14.5], "latency_ms": {"p50": 1234.4, "p95": 5678.9}}
    result = {"official_sample": 9.554726113590661, "note": "", "rows": [
        {**row, "system": "qwen2.5-coder-0.5b (decoder-only, instruct prompt)"}, {**row, "system": "baseline: function name"}]}
    result["rows"].append({**row, "system": "qwen" + AS_WRITTEN, "latency_ms": None})  # the generations above, untimed
    lines = table(result).splitlines()
    assert lines[2] == "| held-out | qwen2.5-coder-0.5b (decoder-only, instruct prompt) | 2 | 12.35 | 10.00-14.50 | 1,234 / 5,679 |"
    assert lines[3].endswith("| 10.00-14.50 |  |") and lines[4].endswith("| 10.00-14.50 |  |")


def test_the_audit_samples_functions_without_docstrings(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(4))
    (tmp_path / "mod.py").write_text(
        f"def bare(a):\n{body}    return a\n\ndef documented(a):\n    \"\"\"Doc.\"\"\"\n{body}\ndef short():\n    return 1\n",
        encoding="utf-8",
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "other.py").write_text(f"def hidden(a):\n{body}", encoding="utf-8")
    (tmp_path / "broken.py").write_text("def (:\n", encoding="utf-8")
    found = functions_without_docstrings(tmp_path)
    assert [(f.module, f.name, f.line) for f in found] == [("mod", "bare", 1)]
    assert found[0].code.startswith("def bare(a):\n") and found[0].code.rstrip().endswith("return a")
    assert sample_functions(tmp_path, 1, seed=3) == found


def test_the_audit_section_counts_the_verdicts_and_shows_the_other_summarizer() -> None:
    from bench.faithfulness import markdown

    function = {"module": "m", "name": "f", "line": 3, "code": "def f(): ...", "summaries": {"default": "Do x|y.", "other": "Do z."}}
    audit = {"root": "/r", "seed": 14, "judged": "default", "functions": [
        {**function, "verdict": "right", "note": "yes"}, {**function, "verdict": "wrong", "note": "no", "other_verdicts": {"other": "vague"}}]}
    text = markdown(audit)
    assert "**1 right, 0 vague, 1 wrong**" in text and "`other`, judged" not in text  # one of its summaries has no verdict
    assert "| 1 | `m.f` (line 3) | Do x\\|y. | right | yes | Do z. |" in text
    assert "| 2 | `m.f` (line 3) | Do x\\|y. | wrong | no | Do z. (vague) |" in text
    audit["functions"][0]["other_verdicts"] = {"other": "wrong"}
    assert "`other`, judged the same way without notes: 0 right, 1 vague, 1 wrong." in markdown(audit)
