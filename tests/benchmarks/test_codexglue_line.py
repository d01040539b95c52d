"""CodeXGLUE line completion: the official evaluator's figures, py150 tokens <-> code, the model paths."""

from __future__ import annotations

import pytest

from bench import codexglue_line as cxg
from bench.codexglue_line import (
    EvaluatorCheckFailed,
    Sample,
    check_official,
    code_tokens,
    detokenize,
    evaluate_files,
    join_tokens,
    load_answers,
    post_process,
    predicted_tokens,
    sample_scores,
    split_lines,
    window,
)
from bench.metrics import fuzz_ratio

pytestmark = pytest.mark.skipif(not cxg.PY150_ANSWERS.is_file(), reason="the CodeXGLUE samples are not at ../shared/eval")


def test_evaluator_reproduces_the_official_sample_figures():
    assert evaluate_files(cxg.PY150_ANSWERS, cxg.PY150_PREDICTIONS) == "Edit sim: 71.05, EM: 39.0"
    assert evaluate_files(cxg.JAVA_ANSWERS, cxg.JAVA_PREDICTIONS) == "Edit sim: 43.8, EM: 0.0"
    assert len(check_official()) == 2


def test_fuzz_ratio_rounds_each_sample_half_to_even_like_fuzzywuzzy():
    assert fuzz_ratio("this is a test", "this is a test!") == 97  # fuzzywuzzy's README example
    assert fuzz_ratio("a", "abcdefghijklmno") == 12  # 12.5 -> 12 (Python's round)
    assert fuzz_ratio("ab", "abcdefghijklmn") == 25  # exactly 25.0
    assert fuzz_ratio("", "") == 100 and fuzz_ratio("", "x") == 0 and fuzz_ratio("x", "") == 0


def test_literal_placeholders_are_written_back_like_the_official_evaluator():
    assert post_process('x = "<STR_LIT>" + <NUM_LIT> + <NUM_LIT:7> + "<STR_LIT:name>"') == 'x = "" + 0 + 7 + "name"'
    assert sample_scores('f ( "<STR_LIT:a>" )', 'f ( "a" )') == (True, 100)
    code, _ = detokenize('<s> x = "<STR_LIT:U+0020>" + <NUM_LIT> <EOL> y = <NUM_LIT:1> <EOL>')
    assert code == 'x = " " + 0\ny = 1\n'


def test_scoring_refuses_to_run_when_the_evaluator_check_fails(monkeypatch: pytest.MonkeyPatch):
    answers, predictions, _ = cxg.OFFICIAL_CHECKS[0]
    monkeypatch.setattr(cxg, "OFFICIAL_CHECKS", ((answers, predictions, "Edit sim: 71.0, EM: 39.0"),))
    with pytest.raises(EvaluatorCheckFailed, match="71.05"):
        cxg.score(model=None, samples=[Sample("<s> x = 1 <EOL>", "y = 2")])  # type: ignore[arg-type]


def test_tokens_become_indented_idiomatic_code():
    text = ("<s> import os <EOL> from . import util <EOL> class A ( object ) : <EOL> x = - 1 <EOL> "
            "class Meta : <EOL> db = 'a b' <EOL> def f ( self , * args , key = None , ** kw ) : <EOL> "
            "if key : <EOL> return self . g ( key ) [ 0 ] <EOL> else : <EOL> return { 'k' : kw } <EOL> "
            "@ property <EOL> def g ( self ) : <EOL> pass <EOL> class B : <EOL> pass <EOL> if __name__ == '__main__' : <EOL>")
    code, last = detokenize(text)
    assert code == (
        "import os\n"
        "from . import util\n"
        "class A(object):\n"
        "    x = -1\n"
        "    class Meta:\n"
        "        db = 'a b'\n"
        "    def f(self, *args, key=None, **kw):\n"
        "        if key:\n"
        "            return self.g(key)[0]\n"
        "        else:\n"
        "            return {'k': kw}\n"
        "    @property\n"
        "    def g(self):\n"
        "        pass\n"
        "class B:\n"
        "    pass\n"
        "if __name__ == '__main__':\n"
        "    "
    )
    assert last == []
    compile(code + "pass\n", "<detokenized>", "exec")


def test_continuation_lines_are_indented_inside_brackets():
    code, last = detokenize("<s> x = f ( a , <EOL> b ) <EOL> y = [ <EOL> 1")
    assert code == "x = f(a,\n    b)\ny = [\n    1"
    assert last == ["1"]


def test_strings_split_at_their_spaces_are_one_token_again():
    assert split_lines("<s> print ( 'Hello ,  world' ) <EOL> x = ' '".split()) == [
        ["print", "(", "'Hello , world'", ")"], ["x", "=", "' '"]]


def test_long_strings_are_blanked_as_in_the_py150_sample():
    assert code_tokens("x = 'short_string'\n") == ["x", "=", "'short_string'"]  # 14 characters: kept
    assert code_tokens("x = u'a_much_longer_string'  # note\ny = \"\"\"documentation\nstring\"\"\"\n") == [
        "x", "=", "u''", "<EOL>", "y", "=", '""']


def test_code_tokens_keep_what_precedes_an_unfinished_line():
    assert code_tokens("foo(a, [1") == ["foo", "(", "a", ",", "[", "1"]
    assert code_tokens("x = 'unterminated") == ["x", "=", "'", "unterminated"]  # tokenize's error token


def test_every_sample_input_survives_the_round_trip_through_code():
    for sample in load_answers():
        code, _ = detokenize(sample.input)
        expected = sample.input.split()[1:]
        while expected and expected[-1] == "<EOL>":
            expected.pop()
        assert " ".join(code_tokens(code)).split() == expected


def test_a_perfect_completion_scores_as_an_exact_match_on_every_sample():
    for sample in load_answers():
        _, prefix = detokenize(sample.input)
        line = join_tokens(prefix + split_lines(sample.gt.split())[0])
        prediction = " ".join(predicted_tokens(prefix, line))
        assert sample_scores(prediction, sample.gt) == (True, 100)


def test_predicted_tokens_start_where_the_completion_departs_from_the_prefix():
    assert predicted_tokens(["for"], "for x in range(3):") == ["x", "in", "range", "(", "3", ")", ":"]
    assert predicted_tokens(["x", "=", "foo"], "x = foobar(1)") == ["foobar", "(", "1", ")"]
    assert predicted_tokens([], "    return x  # done") == ["return", "x"]


def test_window_keeps_whole_lines_within_the_budget():
    code = "".join(f"line{i} = {i}\n" for i in range(10))
    kept = window(code, lambda text: len(text.split()), budget=9)
    assert kept == "line7 = 7\nline8 = 8\nline9 = 9\n"
    assert window("one very long line", lambda text: 100, budget=5) == "one very long line"


def test_the_model_paths_complete_a_memorized_line(tiny_models):
    from inference import CodeModel

    model = CodeModel(tiny_models.llama_int8, device="cpu", cpu_threads=1)
    tokens = " ".join(code_tokens("def add(a, b):\n    return"))
    samples = [Sample(f"<s> {tokens}", "a + b"), Sample(f"<s> {tokens}", "a - b")]
    result = cxg.score(model, samples)
    engine = result["predictions"]["engine"]
    assert [p["prediction"] for p in engine] == ["a + b", "a + b"]
    assert [p["exact"] for p in engine] == [True, False]
    assert result["summary"]["engine"]["official"] == "Edit sim: 90.0, EM: 50.0"
    assert result["predictions"]["server"][0]["prediction"] == "a + b"
    assert "## CodeXGLUE line completion" in cxg.markdown({**result, "data": str(cxg.PY150_ANSWERS)})
