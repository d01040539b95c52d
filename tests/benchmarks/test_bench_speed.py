"""The speed benchmarks' machinery on tiny real models: engines side by side, the bandwidth bound, daemon load.

No timings are asserted: the checks are that every runner does the same work (same token count,
same greedy tokens where the engines agree) and that the figures are put together correctly.
"""

from __future__ import annotations

import pytest

from bench import bandwidth, daemon_load, heap, peers
from bench.speed_report import goal_lines, heap_section, load_section, peers_section
from inference.engines.memory import LARGE_BUFFER_BYTES


def test_timing_figures_come_from_token_arrivals():
    timing = peers.Timing([100.0, 110.0, 120.0, 130.0, 140.0])
    assert timing.first_token_ms == 100.0
    assert timing.completion_ms(3) == 120.0
    assert timing.completion_ms(16) == 140.0  # a run that ended early counts what it got
    assert timing.tokens_per_s == pytest.approx(4 / 0.040)


def test_windows_never_share_text():
    ids = list(range(10_000))
    prompts = peers.windows(ids, 128, 3)
    assert [p[0] for p in prompts] == [0, 4936, 9872] and all(len(p) == 128 for p in prompts)
    with pytest.raises(ValueError, match="need 12288 source tokens"):
        peers.windows(ids, 4096, 3)


def test_ratios_are_theirs_over_ours():
    def cell(ms: float) -> dict:
        return {"completion_ms": {"median": ms, "p95": ms, "n": 1}}

    results = {"1024": {"cold": {"ours": cell(100), "llama.cpp Q4_1": cell(180), "transformers float32": cell(450)},
                        "typing": {"ours": cell(50), "llama.cpp Q4_1": cell(60)}}}
    assert peers.ratios(results, "ours") == {"1024": {"llama.cpp Q4_1": 1.8, "transformers float32": 4.5}}
    assert peers.ratios(results, "ours", "typing") == {"1024": {"llama.cpp Q4_1": 1.2}}
    lines = goal_lines({"ratios": {"cold": peers.ratios(results, "ours")}})
    assert any("llama.cpp Q4_1 / ours = 1.80 (goal >= 1.5): met" in line for line in lines)
    assert any("transformers float32 / ours = 4.50 (goal >= 3.0): met" in line for line in lines)


def test_ctranslate2_and_transformers_runners_do_the_same_work(tiny_models):
    ct2 = peers.Ct2Runner(tiny_models.llama_float32, "float32", 1, "ct2")
    hf = peers.TransformersRunner(tiny_models.llama_hf, 1, "hf")
    ids = list(range(5, 5 + 64 * 7)) * 3
    results = peers.measure([ct2, hf], ids, lengths=(32, 64), repeats=2, new_tokens=6, tail_tokens=8)
    for length in ("32", "64"):
        for runner in ("ct2", "hf"):
            figures = results[length]["cold"][runner]
            assert figures["completion_ms"]["n"] == 2 and figures["first_token_ms"]["median"] > 0
        assert "ct2" in results[length]["typing"] and "hf" not in results[length]["typing"]  # no prompt cache there
    # Same greedy work: the float32 engines pick the same tokens for the same ids.
    prompt = ids[:32]
    ct2_tokens = [step.token_id for step in ct2._tokens(prompt, 6)]
    assert ct2_tokens == list(hf._tokens(prompt, 6))
    ct2.close()
    hf.close()


def test_static_prompt_cache_gives_the_cold_run_s_tokens(tiny_models):
    runner = peers.Ct2Runner(tiny_models.llama_int8, "int8", 1, "ct2")
    prompt = list(range(5, 69))
    cold = [step.token_id for step in runner._tokens(prompt, 5)]
    cached = [step.token_id for step in runner._tokens(prompt[48:], 5, static_prompt=runner.tokenizer.convert_ids_to_tokens(prompt[:48]),
                                                        cache_static_prompt=True)]
    assert cached == cold
    runner.close()


def test_bandwidth_bound_uses_the_weights_on_disk(tiny_models):
    assert bandwidth.memory_bandwidth_gbs(threads=2, array_bytes=8 * 2**20, runs=1) > 0
    bound = bandwidth.decode_bound(tiny_models.llama_int8, threads=1, step_ms=1.0)
    assert bound["weight_mb"] == round((tiny_models.llama_int8 / "model.bin").stat().st_size / 1e6, 1)
    assert bound["times_bound"] == pytest.approx(1.0 / bound["bound_ms"], rel=0.02)


def test_heap_bench_times_each_threshold_in_its_own_process(tiny_models):
    result = heap.run(tiny_models.llama_int8, [16, 32], threads=1, repeats=1)
    assert list(result["thresholds"].values()) == [None, 2**20, LARGE_BUFFER_BYTES]
    for cell in result["results"].values():
        assert list(cell) == list(result["thresholds"])
        assert cell[list(cell)[-1]]["decode_ratio_to_server"] == 1.0
        assert all(f["prompt_ms"]["median"] > 0 and f["faults_per_token"]["median"] >= 0 for f in cell.values())
    report = "\n".join(heap_section({**result, "command": "python -m bench.heap"})).splitlines()
    table = [line for line in report if line.split("|")[1:2] and line.split("|")[1].strip() == "16"]
    assert len(table) == 3


def test_daemon_load_answers_every_editor(tiny_models, monkeypatch):
    monkeypatch.setenv("CODET5_LSP_CACHE", str(tiny_models.llama_int8.parent / "cache"))
    result = daemon_load.run(model=str(tiny_models.llama_int8), clients=(1, 2), seconds=3.0, threads=1)
    assert [r["clients"] for r in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["failed"] == 0, run["failures"]
        assert run["completions"] > 0 and run["completions_per_s"] > 0
        assert 0 <= run["cache_hits"] <= run["completions"]
    table = "\n".join(load_section(result))
    assert "| editors |" in table and table.count("\n|") >= 4


def test_daemon_load_paced_editors_run_each_variant_in_turn(tiny_models, monkeypatch):
    """`--paced --variants`: editors at a person's pace, each count once per set of editor settings;
    what counts is the requests before a pause (at least the one where an editor stops)."""
    monkeypatch.setenv("CODET5_LSP_CACHE", str(tiny_models.llama_int8.parent / "cache"))
    variants = {"debounce0": {"debounceMs": 0}, "debounce50": {"debounceMs": 50}}
    result = daemon_load.run(model=str(tiny_models.llama_int8), clients=(2,), seconds=2.0, threads=1, paced=True, variants=variants)
    assert result["paced"] and [(r["variant"], r["clients"]) for r in result["runs"]] == [("debounce0", 2), ("debounce50", 2)]
    for run in result["runs"]:
        assert run["failed"] == 0, run["failures"]
        assert run["settings"] == variants[run["variant"]] and run["completions"] >= 2  # each editor stops once at least
    assert "| 2 (`debounce50`) |" in "\n".join(load_section(result))


def test_peers_section_renders_skips_and_ratios():
    cell = {"first_token_ms": {"median": 10, "p95": 12, "n": 2}, "completion_ms": {"median": 40, "p95": 41, "n": 2},
            "tokens_per_s": {"median": 50.0, "p95": 55.0, "n": 2}}
    data = {"threads": 2, "new_tokens": 32, "completion_tokens": 16, "tail_tokens": 24, "repeats": 2, "ours": "ours",
            "runners": ["ours"], "skipped": {"llama.cpp": "llama-cpp-python is not installed"}, "sources": ["/x/inspect.py"],
            "results": {"1024": {"cold": {"ours": cell}, "typing": {"ours": cell}}}, "ratios": {"cold": {}, "typing": {}}}
    text = "\n".join(peers_section(data))
    assert "llama.cpp: not measured (llama-cpp-python is not installed)" in text
    assert "| 1024 " in text and "1 (ours)" in text
