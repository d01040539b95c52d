"""The decode-step profile's machinery: the model.bin rewriter on a tiny real model, the perf
report's grouping, and the benchmark's processes put together. No timings are asserted."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench import decode_profile, perf_shares
from bench.model_bin import EMBEDDING, PROJECTION, read_index, untie_projection
from inference.engines.runtime import ctranslate2

TOKENS = [["def", "Ġadd", "(", "a", ","]]


def _logits(model_dir) -> np.ndarray:
    return np.array(ctranslate2.Generator(str(model_dir), compute_type="int8").forward_batch(TOKENS))


def test_an_untied_copy_is_the_same_model(tiny_models, tmp_path):
    tied = read_index(tiny_models.llama_int8 / "model.bin")
    assert tied.aliases == {PROJECTION: EMBEDDING}
    untied = untie_projection(tiny_models.llama_int8, tmp_path / "untied")
    index = read_index(untied / "model.bin")
    assert index.aliases == {} and index.variables[PROJECTION].shape == tied.variables[EMBEDDING].shape
    assert set(index.variables) - set(tied.variables) == {PROJECTION, PROJECTION + "_scale"}
    assert (untied / "tokenizer.json").is_file() and (untied / "config.json").is_file()
    np.testing.assert_array_equal(_logits(untied), _logits(tiny_models.llama_int8))


def test_a_cut_projection_keeps_the_first_rows_of_the_logits(tiny_models, tmp_path):
    cut = untie_projection(tiny_models.llama_int8, tmp_path / "cut", rows=50)
    assert read_index(cut / "model.bin").variables[PROJECTION].shape[0] == 50
    logits = _logits(cut)
    assert logits.shape[-1] == 50
    np.testing.assert_array_equal(logits, _logits(tiny_models.llama_int8)[..., :50])


def test_untie_refuses_untied_models_and_impossible_row_counts(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="not tied"):
        untie_projection(tiny_models.codegen_int8, tmp_path / "codegen")
    with pytest.raises(ValueError, match="rows must be within 1 and"):
        untie_projection(tiny_models.llama_int8, tmp_path / "none", rows=0)


REPORT = """\
# Samples: 3K of event 'cpu-clock:ppp'
#
# Overhead  Shared Object                     Symbol
# ........  ................................  ......
#
    60.00%  [JIT] tid 29641                   [.] jit_avx512_core_u8_copy_at_kern
    10.00%  [JIT] tid 29642                   [.] jit_avx512_core_u8_copy_at_kern
     5.00%  [JIT] tid 29641                   [.] jit_avx512_core_gemm_s8u8s32_kern
     0.75%  [JIT] tid 29641                   [.] jit_sse41_gemv_n_f32_kern
     0.25%  [JIT] tid 29641                   [.] jit_avx512_core_gemm_smalln_tn_xbyak_gemm
     0.25%  [JIT] tid 29641                   [.] 0x00007f667003b073
     8.00%  [kernel.kallsyms]                 [k] finish_task_switch.isra.0
     4.00%  libctranslate2-a7a60d30.so.4.8.5  [.] dnnl::impl::cpu::x64::gemm_kernel<signed char, unsigned char, int>
     3.00%  libctranslate2-a7a60d30.so.4.8.5  [.] ctranslate2::cpu::quantize_s8<(ctranslate2::cpu::CpuIsa)2>
     2.00%  libc.so.6                         [.] __memmove_avx512_unaligned_erms
     1.50%  libgomp-e985bcbb.so.1.0.0         [.] gomp_team_barrier_wait_end
     0.50%  python3.11                        [.] _PyEval_EvalFrameDefault
     5.00%  libstdc++.so.6.0.30               [.] operator delete
"""


def test_perf_samples_are_grouped_by_component():
    rows = perf_shares.parse_report(REPORT)
    assert len(rows) == 13 and rows[0] == (60.0, "[JIT] tid 29641", "jit_avx512_core_u8_copy_at_kern")
    assert perf_shares.shares(rows) == {
        "oneDNN JIT: int8 packing (u8/s8 copy kernels)": 70.0, "oneDNN JIT: int8 multiply (s8u8s32 kernels)": 5.0,
        "oneDNN JIT: float32 (attention products)": 1.0, "oneDNN JIT: other": 0.25, "oneDNN compiled code": 4.0, "CTranslate2 own operators": 3.0, "kernel": 8.0,
        "libc": 2.0, "libgomp (OpenMP)": 1.5, "Python": 0.5, "other": 5.0}
    top = perf_shares.top_symbols(rows, count=2)
    assert top[0] == {"percent": 70.0, "dso": "[JIT]", "symbol": "jit_avx512_core_u8_copy_at_kern"}  # threads merged
    assert top[1]["symbol"] == "finish_task_switch.isra.0"


def test_ratios_pair_the_repetitions_of_a_variant_with_the_baseline():
    def repetition(step: float) -> list[dict]:
        return [{"context": 8, "fill_ms": 30.0, "first_token_ms": [2 * step], "step_ms": [step, step + 1],
                 "faults_per_step": 1.0, "load": 0.0}]

    runs = {"default": [repetition(10), repetition(20)], "1-thread": [repetition(15), repetition(30)]}
    summary = decode_profile.summarize(runs, [8])["8"]
    assert summary["default"]["step_ms"]["median"] == 15.5 and summary["default"]["samples"] == 2
    ratio = summary["1-thread"]["step_ms_vs_baseline"]
    assert ratio["ratio"] == pytest.approx(23.0 / 15.5, abs=1e-3)
    assert ratio["interval"][0] <= ratio["ratio"] <= ratio["interval"][1]
    assert "step_ms_vs_baseline" not in summary["default"]


def test_each_variant_decodes_in_its_own_processes(tiny_models):
    result = decode_profile.run(tiny_models.llama_int8, ["default", "1-thread", "untied"], [4, 12], repeats=2,
                                new_tokens=2, samples=1, perf_contexts=[], perf_seconds=0)
    assert result["perf"] == [] and result["perf_unavailable"] == "not asked for"
    assert [len(result["runs"][name]) for name in ("default", "1-thread", "untied")] == [2, 2, 2]
    assert {row["context"] for repetition in result["runs"]["untied"] for row in repetition} == {4, 12}
    assert result["variants"]["1-thread"]["threads"] == 1
    assert [b["threads"] for b in result["bound"]] == [result["variants"]["default"]["threads"], 1]
    rows = re.findall(r"^\|\s+(\d+) \| (\S+)\s", decode_profile.tables(result), re.MULTILINE)
    assert sorted(rows) == sorted((c, v) for c in ("4", "12") for v in ("default", "1-thread", "untied"))


def test_tables_put_llama_cpp_beside_our_default():
    figures = {"median": 40.0, "p95": 42.0}
    result = {
        "bound": [{"threads": 2, "bandwidth_gbs": 30.0, "weight_mb": 496.1, "bound_ms": 16.5, "decode_step_ms": 60.0,
                   "times_bound": 3.6}],
        "variants": {"default": {}},
        "summary": {"8": {"default": {"first_token_ms": {"median": 120.0, "p95": 130.0}, "step_ms": {"median": 60.0, "p95": 62.0},
                                      "faults_per_step": 400.0, "fill_ms": 250.0}}},
        "llama_cpp": {"gguf": "/x/model.Q4_K_M.gguf", "gguf_mb": 491.4, "threads": 2,
                      "results": {"8": {"first_token_ms": {"median": 80.0, "p95": 90.0}, "step_ms": figures}}},
        "perf": [],
    }
    text = decode_profile.tables(result)
    assert "llama.cpp (model.Q4_K_M.gguf, 491.4 MB: bound 16.4 ms/step at 30.0 GB/s), 2 threads" in text
    assert re.search(r"^\|\s+8 \| 80 / 90\s+\| 40\.0 / 42\.0\s+\| 120\s+\| 60\.0\s+\|$", text, re.MULTILINE)
