"""Smoothed BLEU-4 (CodeXGLUE code-to-text definition) and the summarization baseline."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from bench.bleu import main, read_id_file
from inference.summary.bleu import bleu_of_pairs, corpus_bleu, normalize, split_punctuation
from bench.summarization import codexglue_examples, markdown, name_sentence, official_sample_score

EVAL = Path(__file__).resolve().parents[3] / "shared" / "eval"
SAMPLE_REFERENCE = EVAL / "codexglue_code2text_sample5_reference.txt"
SAMPLE_PREDICTIONS = EVAL / "codexglue_code2text_sample5_predictions.txt"
CODEXGLUE_HEAD = EVAL / "codexglue_code2text_python_test_head130.jsonl"


@pytest.mark.skipif(not SAMPLE_REFERENCE.is_file(), reason="the CodeXGLUE evaluator sample is not at ../shared/eval")
def test_official_sample_score(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SAMPLE_PREDICTIONS.read_text(encoding="utf-8")))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([str(SAMPLE_REFERENCE)]) == 0
    assert out.getvalue().strip() == "9.554726113590661"


def test_tokenization_lowercases_and_splits_punctuation() -> None:
    assert split_punctuation("get_user's name(s).") == "get_user ' s name ( s ) ."
    assert normalize("Returns the Value, e.g. 3.5") == ["returns", "the", "value", ",", "e", ".", "g", ".", "3.5"]


def test_sentence_scores() -> None:
    exact, case_and_spacing, unrelated, empty = bleu_of_pairs(
        ["Return the sum of a and b.", "Return the sum.", "Open the file.", "Open the file."],
        ["Return the sum of a and b.", "return  THE sum .", "Close every socket now", ""],
    )
    assert exact == pytest.approx(100.0) and case_and_spacing == pytest.approx(100.0)
    assert unrelated == pytest.approx(0.0, abs=1e-6)  # no shared word: no unigram credit, no smoothing
    assert empty < 2  # only the add-one smoothing of 2- to 4-grams, times the brevity penalty
    partial = bleu_of_pairs(["Return the sum of a and b."], ["Return the sum of two numbers."])[0]
    assert unrelated < partial < exact


def test_corpus_bleu_uses_shared_ids_only() -> None:
    references = read_id_file(["0\tOpen the file.\n", "1\tClose it.\n"])
    assert corpus_bleu(references, {"0": "Open the file."}) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        corpus_bleu(references, {"7": "x"})


@pytest.mark.parametrize(
    ("name", "sentence"),
    [("get_user_name", "Get user name."), ("getUserName", "Get user name."), ("__init__", "Init."), ("parse2D", "Parse2 d."), ("_", "")],
)
def test_name_baseline(name: str, sentence: str) -> None:
    assert name_sentence(name) == sentence


@pytest.mark.skipif(not CODEXGLUE_HEAD.is_file(), reason="the CodeXGLUE code-to-text sample is not at ../shared/eval")
def test_codexglue_examples_drop_the_docstring() -> None:
    examples = codexglue_examples(CODEXGLUE_HEAD)
    assert len(examples) == 130
    first = examples[0]
    assert first.name == "sina_xml_to_url_list" and first.reference == "str - > list Convert XML to URL List . From Biligrab ."
    assert "Biligrab" not in first.code and first.code.startswith("def sina_xml_to_url_list(xml_data):")


@pytest.mark.skipif(not SAMPLE_REFERENCE.is_file(), reason="the CodeXGLUE evaluator sample is not at ../shared/eval")
def test_bench_checks_the_metric_on_the_official_sample() -> None:
    assert official_sample_score(SAMPLE_REFERENCE, SAMPLE_PREDICTIONS) == 9.554726113590661


def test_markdown_section_has_every_row_the_check_and_predictions() -> None:
    row = {"examples": 2, "bleu": 12.345, "ci95": [10.0, 14.5], "samples": [{"name": "add", "reference": "Add two numbers.", "prediction": "Add a and b."}]}
    result = {
        "models": [{"path": "/x/summarizer", "kind": "encoder-decoder"}], "official_sample": 9.554726113590661,
        "decoding": "greedy", "note": "Paper: 20.16.",
        "rows": [{"test_set": "held-out", "system": "embedded summarizer", **row}, {"test_set": "held-out", "system": "baseline: function name", **row, "bleu": 3.0}],
    }
    text = markdown(result)
    assert "| held-out | embedded summarizer | 2 | 12.35 | 10.00-14.50 |" in text
    assert "| held-out | baseline: function name | 2 | 3.00 |" in text
    assert "9.554726113590661" in text and "'Add a and b.'" in text and text.startswith("## ")
