"""The benchmark's metric code: statistics, line metrics, program assembly, replay bookkeeping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.codexglue_line import PY150_ANSWERS
from bench.execution import run_program
from bench.humaneval import DATA as HUMANEVAL_DATA
from bench.humaneval import StageTrace, Task, editor_view, first_changing_stage, first_line, loss_cause, program
from bench.metrics import edit_similarity, exact_match
from bench.replay import Keystroke, Request, Scenario, _Document, classify, document_and_keys, next_key, summarize, typing_states
from bench.stats import (
    bootstrap_interval,
    markdown_table,
    mcnemar_exact,
    mean,
    median,
    p95,
    percentile,
    wilson_interval,
)


# -- statistics ---------------------------------------------------------------------------------

def test_percentiles_interpolate_linearly_like_numpy():
    values = [10, 1, 4, 7, 3]
    assert median(values) == 4
    assert median([1, 2, 3, 4]) == 2.5
    assert percentile(values, 0) == 1 and percentile(values, 100) == 10
    assert p95(list(range(1, 101))) == pytest.approx(95.05)
    assert percentile([5.0], 95) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_wilson_interval_matches_published_values():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(272, 1033)
    assert low < 272 / 1033 < high and high - low < 0.06
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    values = [float(i % 7) for i in range(200)]
    low, high = bootstrap_interval(values, mean, seed=1)
    assert low < mean(values) < high
    assert bootstrap_interval(values, mean, seed=1) == (low, high)
    assert bootstrap_interval([3.0] * 20, median) == (3.0, 3.0)
    pairs = [(True, False)] * 10 + [(True, True)] * 10
    assert bootstrap_interval(pairs, lambda s: sum(b - a for a, b in s) / len(s))[1] < 0


def test_mcnemar_exact_two_sided():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(9, 1) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(4, 4) == 1.0


def test_markdown_table_aligns_numbers_right():
    table = markdown_table(["name", "n"], [["a", 1], ["bbbb", 22]])
    assert table.splitlines() == ["| name |   n |", "|------|----:|", "| a    |   1 |", "| bbbb |  22 |"]
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [[1]])


# -- line metrics and programs ------------------------------------------------------------------

def test_edit_similarity_is_the_levenshtein_ratio():
    assert edit_similarity("kitten", "sitting") == pytest.approx(8 / 13)
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("abc", "xyz") == 0.0
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("", "a") == 0.0


def test_exact_match_ignores_surrounding_whitespace_only():
    assert exact_match("    return x\n", "return x")
    assert not exact_match("return  x", "return x")


TASK = Task(
    task_id="T/0",
    prompt="def f(x):\n    y = x + 1\n",
    suffix="    return z\n",
    canonical="    z = y * 2\n",
    test="def check(candidate):\n    assert candidate(1) == 4\n",
    entry_point="f",
)


def test_editor_view_keeps_the_empty_line_and_puts_the_cursor_on_it():
    view = editor_view(TASK, indented=False)
    assert view.text == "def f(x):\n    y = x + 1\n\n    return z\n"
    assert (view.line, view.character, view.typed) == (2, 0, "")
    indented = editor_view(TASK, indented=True)
    assert indented.text.splitlines()[2] == "    " and (indented.line, indented.character) == (2, 4)


def test_programs_pass_with_the_canonical_line_and_fail_otherwise():
    assert run_program(program(TASK, "    z = y * 2")).status == "passed"
    failed = run_program(program(TASK, "    z = y"))
    assert failed.status == "failed" and "AssertionError" in failed.detail
    assert run_program(program(TASK, "")).status == "failed"
    assert run_program("while True:\n    pass\n", timeout_s=0.5).status == "timeout"


def test_first_line_stops_at_the_first_newline_after_content():
    assert first_line("\n    return x\n    y") == "\n    return x"
    assert first_line("   ") == "   "
    assert first_line("a = 1") == "a = 1"


def test_loss_cause_names_the_first_stage_that_departs():
    def trace(**changes) -> StageTrace:
        base = dict(prompt_is_task_prompt=True, prompt_chars_dropped=0, header_chars=0, multiline=False,
                    raw="    z = y * 2", raw_unstopped_line="    z = y * 2", final="    z = y * 2")
        return StageTrace(**{**base, **changes})

    engine = "    z = y * 2"
    assert loss_cause(trace(prompt_is_task_prompt=False), engine).startswith("context")
    assert loss_cause(trace(raw_unstopped_line="    z = 0", raw="    z = 0"), engine).startswith("model")
    assert loss_cause(trace(raw="    z ="), engine) == "stop rule"
    assert loss_cause(trace(raw="", raw_unstopped_line="\n" + engine), "\n" + engine).startswith("stop rule (a blank line")
    assert loss_cause(trace(multiline=True, raw=engine + "\n    break"), engine).startswith("block mode")
    assert loss_cause(trace(final=None), engine) == "post-processing"
    assert loss_cause(trace(), engine) == "indentation or whitespace"


def test_first_changing_stage_names_the_post_processing_stage():
    from inference.completion.postprocess.chain import postprocess_explained
    from inference.completion.request import CompletionRequestText

    request = CompletionRequestText(line_prefix="    x = f(a", prev_lines=["def g(a):"])

    def changing(raw: str) -> str | None:
        events = []
        postprocess_explained(raw, request, events.append)
        return first_changing_stage(events)

    assert changing(")) + 1") == "balance_brackets"
    assert changing(")") is None
    assert changing(")   ") == "drop_blank"


# -- replay bookkeeping -------------------------------------------------------------------------

SOURCE = "def f(a):\n    if a:\n        return 1\n\n    return 2\n"


def test_typing_the_keys_rebuilds_the_file(tmp_path: Path):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    scenario = Scenario("t", path, start_line=2, lines=3)
    opening, line, character, keys = document_and_keys(SOURCE, scenario)
    assert opening == "def f(a):\n    return 2\n"
    assert (line, character) == (0, 9)
    assert [k.text for k in keys if "\n" in k.text] == ["\n    ", "\n        ", "\n"]
    document = _Document(opening)
    for key in keys:
        document.insert(key.line, key.character, key.text)
    assert document.text == SOURCE
    states = list(typing_states(scenario))
    assert states[-1][0] == SOURCE and len(states) == len(keys)
    assert states[0][1:] == (1, 4, "enter")
    with pytest.raises(ValueError):
        document_and_keys(SOURCE, Scenario("t", path, start_line=4, lines=3))


def test_document_positions_count_utf16_units():
    document = _Document("a = '\U0001F600'\nb")
    assert document.position(0, 6).character == 7
    change = document.insert(1, 1, "c")
    assert document.text.endswith("bc") and change.content_changes[0].range.start.character == 1


def test_classify_tells_superseded_from_empty_and_shown():
    requests = [
        Request(0, 0, 0, "char", sent_s=0.0, latency_ms=150.0, text=""),  # back after the next key: superseded
        Request(1, 0, 1, "char", sent_s=0.1, latency_ms=50.0, text=""),  # back before the next key: empty
        Request(2, 0, 2, "char", sent_s=0.2, latency_ms=400.0, text="x"),  # shown, but after the next key
        Request(3, 0, 3, "char", sent_s=0.3, latency_ms=5.0, text="y", cache_hit=True),
    ]
    classify(requests)
    assert [r.outcome for r in requests] == ["superseded", "empty", "shown", "shown"]
    assert [r.visible_before_next_key for r in requests] == [False, False, False, True]
    summary = summarize([vars(r) for r in requests])
    assert (summary["superseded"], summary["empty"], summary["shown"]) == (1, 1, 2)
    assert summary["completed"]["count"] == 3 and summary["cache_hits"]["count"] == 1
    assert summary["model_runs"]["p50_ms"] == 225.0
    assert math.isclose(summary["superseded_share"], 0.25)


def test_an_editor_that_waits_before_asking_has_its_suggestions_judged_against_the_next_key():
    # Neovim's plugin asks only after `debounce_ms` without a key: the next request may come many keys
    # later, so a suggestion is visible only if it arrived before the next key, not the next request
    requests = [
        Request(0, 0, 1, "char", sent_s=0.0, latency_ms=300.0, text="x", next_key_s=0.2),
        Request(1, 0, 9, "char", sent_s=2.0, latency_ms=300.0, text="y", next_key_s=2.5),
    ]
    classify(requests)
    assert [r.visible_before_next_key for r in requests] == [False, True]
    assert requests[0].outcome == "shown"


def test_a_suggestion_asked_at_another_cursor_is_not_accepted():
    keys = [Keystroke(0, 0, "r", 10.0), Keystroke(0, 1, "e", 20.0), Keystroke(0, 2, "t", 30.0)]
    earlier = Request(0, 0, 0, "char", 0.0, latency_ms=5.0, text="et")  # asked before "r" was typed
    assert next_key(keys, 1, [earlier], accept=True) == (keys[1], 2, "char")
    here = Request(0, 0, 1, "char", 0.0, latency_ms=5.0, text="et")
    assert next_key(keys, 1, [here], accept=True) == (Keystroke(0, 1, "et", 30.0), 3, "accept")


# -- HumanEval with the suffix (infilling) --------------------------------------------------------

def test_engine_infill_path_fills_the_gap_with_a_span_infilling_model(tiny_models):
    from bench import humaneval
    from inference import CodeModel
    from tests.tiny_models import INFILL_EXAMPLES

    prefix, middle, suffix = INFILL_EXAMPLES[0]  # "...def add(a, b):\n    return " | "a + b" | "\n\n\ndef greet..."
    task = Task("tiny/add", prefix, suffix, middle + "\n", "def check(candidate):\n    assert candidate(2, 3) == 5\n", "add")
    t5 = CodeModel(tiny_models.t5_int8, device="cpu", cpu_threads=1)
    assert humaneval.can_infill(t5)
    result = humaneval.run([task], t5, ["engine-infill"])
    attempt = result["attempts"]["engine-infill"][0]
    assert (attempt["completion"], attempt["passed"], attempt["exact"]) == ("a + b", True, True)

    llama = CodeModel(tiny_models.llama_int8, device="cpu", cpu_threads=1)
    assert not humaneval.can_infill(llama)
    with pytest.raises(ValueError, match="cannot infill"):
        humaneval.run([task], llama, ["engine-infill"])


# -- benchmark model files and quantization fidelity ----------------------------------------------

def test_bench_artifacts_are_reused_from_the_cache_and_quantizations_checked(tmp_path, monkeypatch):
    from bench import artifacts

    monkeypatch.setenv("CODET5_LSP_CACHE", str(tmp_path))
    converted = tmp_path / "models" / "bench" / "smollm2-135m-ct2-int8"
    converted.mkdir(parents=True)
    for name in ("model.bin", "config.json", "vocabulary.json", "tokenizer.json"):
        (converted / name).write_text("{}")
    gguf = tmp_path / "models" / "bench" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    assert artifacts.smollm2_ct2("int8") == converted  # complete: not rebuilt (nothing here could rebuild it)
    assert artifacts.smollm2_gguf() == gguf
    assert artifacts.directory_size(converted) == 8 and artifacts.directory_size(gguf) == 4
    with pytest.raises(ValueError, match="unknown quantization"):
        artifacts.smollm2_ct2("int4")


@pytest.mark.skipif(not (HUMANEVAL_DATA.is_file() and PY150_ANSWERS.is_file()), reason="the eval data is not at ../shared/eval")
def test_fidelity_measures_two_quantizations_and_pairs_them(tiny_models):
    from bench import fidelity

    first = fidelity.measure(tiny_models.llama_float32, "float32", humaneval_limit=3, py150_limit=2)
    second = fidelity.measure(tiny_models.llama_int8, "int8", humaneval_limit=3, py150_limit=2)
    assert (first["compute_type"], second["compute_type"]) == ("float32", "int8")
    assert second["peak_rss_mb"] >= second["rss_loaded_mb"] > 0
    assert first["humaneval"]["tasks"] == 3 and first["py150"]["samples"] == 2
    comparison = fidelity.compare_runs(first, second)
    lines = [[a["completion"] for a in run["humaneval"]["attempts"]["engine"]] for run in (first, second)]
    assert comparison["humaneval"]["same_line"] == sum(a.strip() == b.strip() for a, b in zip(*lines))
    assert comparison["py150"]["same_prediction"] <= 2
    result = {"device": "cpu", "quantizations": ["float32", "int8"], "seconds": 1.0, "embedded_int8_identical": True,
              "models": {"float32": {**first, "size_mb": 1.0}, "int8": {**second, "size_mb": 0.5}},
              "comparison": {"int8": comparison}, "gpu_not_measured": fidelity.GPU_ROWS}
    text = fidelity.markdown(result)
    assert "byte-identical" in text and "int8 vs float32, paired:" in text
    assert "float16: `python -m bench.fidelity --device cuda" in text
    speed = fidelity.interleaved_latency({"float32": tiny_models.llama_float32, "int8": tiny_models.llama_int8}, tasks=2)
    assert speed["tasks"] == 2 and speed["float32"]["speedup_vs_first"] == 1.0 and speed["int8"]["p50_ms"] > 0
    assert "int8 is" in fidelity.markdown({**result, "speed": speed})


def test_draft_tokens_pairs_the_same_points_across_draft_sizes(tmp_path):
    from bench.draft_tokens import measure, points
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import DecoderShape, train_bpe_tokenizer, write_random_gguf

    prompts = points(4, seed=3)
    assert prompts == points(4, seed=3) and len(prompts) == 4
    assert all(not p.endswith("\n") and p.count("\n") == 40 for p in prompts)  # cut inside a line, 40 lines above
    gguf = write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer(), DecoderShape(context=8192))  # 40 lines of bytes
    model = convert_gguf_to_onnx(gguf, tmp_path / "onnx")
    result = measure([0, 2], count=3, seed=3, threads=1, spec=str(model))
    reference, drafted = result["rows"]
    assert reference["ratio_of_sums"] == 1.0 and reference["drafted_ids"] == 0 and reference["same_line"] == 3
    assert drafted["points"] == 3 and 0 <= drafted["accepted_ids"] <= drafted["drafted_ids"]


def test_onnx_profile_counts_each_operator_of_a_decode_pass(tmp_path):
    from bench.onnx_profile import profile
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import train_bpe_tokenizer, write_random_gguf

    model = convert_gguf_to_onnx(write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer()), tmp_path / "onnx")
    result = profile(model, cached=20, steps=3, threads=1, prefix=tmp_path / "profile")
    operators = {row["op"]: row for row in result["operators"]}
    assert result["steps"] == 3 and result["wall_ms_per_pass"] > 0
    assert operators["DynamicQuantizeMatMul"]["nodes"] == 2 * 4 + 1  # qkv, o, gate/up, down per layer and the output
    assert operators["ReduceMax"]["nodes"] == 2 and "If" not in operators  # down's rows scaled to one range first
    assert operators["GroupQueryAttention"]["nodes"] == 2  # one per layer
    first = profile(model, cached=0, steps=2, threads=1, prefix=tmp_path / "first", pass_ids=16)
    assert first["steps"] == 2 and first["pass_ids"] == 16
    assert {row["op"]: row["nodes"] for row in first["operators"]}["GroupQueryAttention"] == 2


def test_runtime_decode_measures_both_runtimes_of_one_model(tmp_path):
    from bench.runtime_decode import measure
    from inference.models.convert import convert_gguf_to_ct2, convert_gguf_to_onnx
    from tests.tiny_gguf import train_bpe_tokenizer, write_random_gguf

    gguf = write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer())
    specs = {"onnxruntime": str(convert_gguf_to_onnx(gguf, tmp_path / "onnx")),
             "ctranslate2": str(convert_gguf_to_ct2(gguf, tmp_path / "ct2", "int8"))}
    result = measure([8, 40], repeats=2, steps=4, threads=1, specs=specs)
    for row in result["rows"]:
        for runtime in specs:
            assert row[runtime]["n"] > 0 and row[runtime]["median_ms"] >= 0 and row[runtime]["bound_ms"] > 0
        assert row["ratio_onnx_over_ct2"] is None or row["ratio_onnx_over_ct2"] > 0
    assert result["rows"][0]["onnxruntime"]["weights_mb"] != result["rows"][0]["ctranslate2"]["weights_mb"]


def test_huge_pages_bench_runs_both_variants_in_their_own_processes_against_the_bound(tmp_path):
    import json

    from bench.huge_pages import VARIANTS, main
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import train_bpe_tokenizer, write_random_gguf

    model = convert_gguf_to_onnx(write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer()), tmp_path / "onnx")
    out = tmp_path / "huge.json"
    assert main(["--model-dir", str(model), "--rounds", "2", "--contexts", "4", "--lengths", "8", "--requests", "1",
                 "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["bandwidth_gbs"]) == 2 and result["bound_ms"] > 0
    step, first = result["decode_step"][0], result["first_pass"][0]
    assert step["cached_ids"] == 4 and first["ids"] == 8
    for variant in VARIANTS:
        assert step[variant]["n"] == 2 * 16 and step[variant]["times_bound"] > 0 and first[variant]["n"] == 2
    assert step[VARIANTS[0]]["ratio"] == 1.0 and set(result["anon_huge_mb"]) == set(VARIANTS)


def test_first_pass_chunks_times_each_chunk_size_against_one_pass_and_restores_the_setting(tmp_path):
    from bench.first_pass_chunks import measure
    from inference.engines import onnx_engine
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import train_bpe_tokenizer, write_random_gguf

    model = convert_gguf_to_onnx(write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer()), tmp_path / "onnx")
    setting = onnx_engine.FIRST_PASS_CHUNK_IDS
    result = measure(model, [0, 4, 16], [8, 40], repeats=2, threads=1)
    assert [row["ids"] for row in result["first_pass"]] == [8, 40] and result["baseline"] == "one pass"
    for row in result["first_pass"]:
        assert row["one pass"]["ratio"] == 1.0 and all(row[c]["n"] == 2 and row[c]["median_ms"] > 0 for c in ("4", "16"))
    assert onnx_engine.FIRST_PASS_CHUNK_IDS == setting


def test_compute_types_bench_times_each_build_and_its_distance_from_float32(tmp_path):
    from bench.compute_types import measure
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import train_bpe_tokenizer, write_random_gguf

    gguf = write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer())
    builds = {q: (str(convert_gguf_to_onnx(gguf, tmp_path / q, q)), q) for q in ("int8", "int4")}
    exact = convert_gguf_to_onnx(gguf, tmp_path / "float32", "float32")
    result = measure(builds, [16, 40], [8], repeats=2, steps=3, threads=1, reference=exact, windows=3, window=40)
    for row in result["first_pass"] + result["decode_step"]:
        assert all(row[name]["n"] > 0 and row[name]["median_ms"] > 0 for name in builds)
        assert row["int8"]["ratio"] == 1.0  # the baseline against itself
    distances = result["distance_from_float32"]
    assert distances["int8"]["windows"] == 3 and 0 <= distances["int4"]["same_top_id"] <= 3
    assert 0 < distances["int8"]["median_distance"] < distances["int4"]["median_distance"] < 1


def test_switch_visits_files_with_both_servers_and_pairs_them(tmp_path):
    """bench.switch on a tiny ONNX Runtime model: the sample is seeded, each visit's line is code
    followed by code, and both variants answer every visit; the prewarm variant prefills, the
    other never does."""
    import asyncio

    from bench.switch import measure, visits
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import DecoderShape, train_bpe_tokenizer, write_random_gguf

    chosen = visits(3, seed=5)
    assert chosen == visits(3, seed=5) and len({path for path, _ in chosen}) == 3
    for path, line in chosen:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert line >= 20 and lines[line].strip() and lines[line + 1].strip()
    gguf = write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer(), DecoderShape(context=8192))
    model = convert_gguf_to_onnx(gguf, tmp_path / "onnx")
    result = asyncio.run(measure(3, 5, 900.0, ["prewarm", "no-prewarm"], str(model), 1024, keep_open=1))
    warm, cold = result["rows"]
    assert warm["visits"] == cold["visits"] == 3 and cold["ratio_median"] == 1.0 and result["keep_open"] == 1
    assert warm["prompt_cache"]["prefilled_ids"] > 0 and warm["prewarms"] >= 3
    assert cold["prompt_cache"]["prefilled_ids"] == 0 and cold["prewarms"] == 0
    assert len(result["visits"]) == 3 and all(v["prewarm"]["ms"] > 0 for v in result["visits"])


@pytest.mark.parametrize("paced", [False, True])
def test_switch_beside_typists_runs_each_variant_on_its_own_daemon_with_editors_typing(tmp_path, paced):
    """bench.switch --typists on a tiny ONNX Runtime model: each variant's daemon serves its visits
    and two typing editors (closed loop, or at a person's pace: `--paced`), the runs alternate, and
    the typists' answers are counted per variant."""
    import asyncio

    from bench.switch import measure_beside_typists
    from inference.models.convert import convert_gguf_to_onnx
    from tests.tiny_gguf import DecoderShape, train_bpe_tokenizer, write_random_gguf

    gguf = write_random_gguf(tmp_path / "tiny.gguf", train_bpe_tokenizer(), DecoderShape(context=8192))
    model = convert_gguf_to_onnx(gguf, tmp_path / "onnx")
    result = asyncio.run(measure_beside_typists(4, 5, 600.0, ["prewarm", "no-prewarm"], str(model), 1024, typists=2, rounds=2,
                                                paced=paced))
    warm, cold = result["rows"]
    assert result["typists"] == 2 and result["rounds"] == 2 and warm["visits"] == cold["visits"] == 4
    assert cold["prewarms"] == 0 and result["paced"] is paced  # (the typists' own sessions keep prewarm on: they prefill ahead)
    for row in (warm, cold):
        assert row["typists"]["editors"] == 2 and row["typists"]["answers"] > 0 and row["typists"]["p50_ms"] > 0
