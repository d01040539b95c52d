"""GGUF -> ONNX Runtime decoder (inference/models/gguf_onnx.py) and its engine's prefix cache
(inference/engines/onnx_engine.py), on tiny random Qwen2 and Llama GGUFs (tests/tiny_gguf.py).

The float32 graph must compute what CTranslate2's float32 conversion of the same file computes;
continuing a cached prefix must give what a full pass gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import ctranslate2
import numpy as np
import pytest

from inference.engines.healed_generation import FirstTokenRejected, top_k
from inference.engines.model import CodeModel, pick_compute_type, pick_runtime, resolve_for
from inference.engines import onnx_engine
from inference.engines.onnx_engine import DRAFT_TOKENS, KVState, OnnxDecoderEngine, PrefixCache, common_prefix
from inference.engines.prompt_lookup import draft
from inference.engines.tokenizer import CodeTokenizer
from inference.models.convert import (
    CorruptModelError, convert_gguf_to_ct2, convert_gguf_to_onnx, is_onnx_dir, read_metadata, verify_model_bin,
)
from inference.models.embedded import embedded_model_dir
from inference.models.gguf_onnx import WEIGHTS_FILE, quantize_blocks_4bit, quantize_rows
from inference.models.resolve import Backend, ModelNotFoundError, resolve_model
from tests.tiny_gguf import DecoderShape, train_bpe_tokenizer, write_random_gguf

LLAMA = DecoderShape(architecture="llama", rope_theta=10_000.0)
TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Random Qwen2 (tied) and Llama (own output matrix) GGUFs, each converted for ONNX Runtime and
    for CTranslate2, in float32 and int8."""
    root = tmp_path_factory.mktemp("onnx")
    files = {
        "qwen2": write_random_gguf(root / "qwen2.gguf", train_bpe_tokenizer()),
        "llama": write_random_gguf(root / "llama.gguf", train_bpe_tokenizer(qwen2_split=False), LLAMA, output="random", seed=1),
    }
    out: dict[str, Path] = {}
    for name, path in files.items():
        out[f"{name}-gguf"] = path
        out[f"{name}-ct2"] = convert_gguf_to_ct2(path, root / f"{name}-ct2", "float32")
        out[f"{name}-ct2-int8"] = convert_gguf_to_ct2(path, root / f"{name}-ct2-int8", "int8")
        for quantization in ("float32", "int8"):
            out[f"{name}-{quantization}"] = convert_gguf_to_onnx(path, root / f"{name}-{quantization}", quantization)
    return out


def _engine(model_dir: Path, cached: int = 2, draft_tokens: int = DRAFT_TOKENS) -> OnnxDecoderEngine:
    return OnnxDecoderEngine(model_dir, CodeTokenizer(model_dir), threads=1, max_cached_prompts=cached, draft_tokens=draft_tokens)


def _cache_of(model_dir: Path, ids: list[int]) -> np.ndarray:
    """The last layer's values after a pass over `ids` from the start."""
    state = _engine(model_dir)._run(ids, None)[1]
    return state.buffers[-1][:, :, :len(ids)]


def _ct2_next_logits(model_dir: Path, ids: list[int], compute_type: str = "default") -> np.ndarray:
    return np.asarray(ctranslate2.Generator(str(model_dir), compute_type=compute_type).forward_batch([ids]))[0, -1]


def _ids(model_dir: Path) -> list[int]:
    return CodeTokenizer(model_dir).encode(TEXT)


@pytest.mark.parametrize("name", ["qwen2", "llama"])
def test_float32_graph_computes_what_ctranslate2_computes(built, name):
    engine, ids = _engine(built[f"{name}-float32"]), _ids(built[f"{name}-float32"])
    for length in (1, 5, len(ids)):
        logits, _ = engine._run(ids[:length], None)
        np.testing.assert_allclose(logits[-1], _ct2_next_logits(built[f"{name}-ct2"], ids[:length]), atol=2e-4, rtol=2e-4)


@pytest.mark.parametrize("name", ["qwen2", "llama"])
def test_int8_graph_is_as_close_to_float32_as_ctranslate2_int8(built, name):
    ids = _ids(built[f"{name}-int8"])
    exact = _ct2_next_logits(built[f"{name}-ct2"], ids)
    ours = _engine(built[f"{name}-int8"])._run(ids, None)[0][-1]
    theirs = _ct2_next_logits(built[f"{name}-ct2-int8"], ids, "int8")
    assert np.linalg.norm(ours - exact) <= 1.5 * np.linalg.norm(theirs - exact)


def test_a_continued_prefix_gives_what_a_full_pass_gives(built):
    engine, ids = _engine(built["qwen2-float32"]), _ids(built["qwen2-float32"])
    full, _ = engine._run(ids, None)
    _, head = engine._run(ids[:7], None)
    continued, state = engine._run(ids[7:], head)
    np.testing.assert_allclose(continued, full, atol=1e-4, rtol=1e-4)
    assert state.ids == ids and state.capacity >= len(ids)
    longer = state.truncated(4)  # a cache cut back to a shorter prefix, in the same buffers
    np.testing.assert_allclose(engine._run(ids[4:], longer)[0], full, atol=1e-4, rtol=1e-4)


def test_generation_continues_the_longest_cached_prefix_and_matches_an_uncached_run(built):
    model_dir = built["qwen2-int8"]
    ids, end = _ids(model_dir), ["<|im_end|>"]
    cold = list(_engine(model_dir).stream(ids, 0, 12, end))  # a fresh engine: nothing cached
    engine = _engine(model_dir)
    first = list(engine.stream(ids[:-3], 0, 12, end))
    assert engine.prompt_cache_stats()["fills"] == 1 and engine.prompt_cache_stats()["held"] == 1
    assert list(engine.stream(ids, 0, 12, end)) == cold
    stats = engine.prompt_cache_stats()
    assert stats["hits"] == 1 and stats["reused_ids"] >= len(ids) - 3
    assert stats["computed_ids"] == (len(ids) - 3) + (len(ids) - stats["reused_ids"])
    assert first  # the shorter prompt generated too
    assert engine.release_cached_prompts() == 1 and engine.prompt_cache_stats()["held"] == 0


def test_a_state_grows_its_buffers_when_a_pass_needs_more_room(built, monkeypatch):
    monkeypatch.setattr(onnx_engine, "KV_CAPACITY_STEP", 4)
    monkeypatch.setattr(onnx_engine, "KV_HEADROOM_IDS", 2)
    engine, ids = _engine(built["qwen2-float32"]), _ids(built["qwen2-float32"])
    full, _ = engine._run(ids, None)
    _, state = engine._run(ids[:3], None)
    assert state.capacity == 8  # 3 ids and 2 of room, rounded up to the step
    buffers = state.buffers
    _, state = engine._run(ids[3:5], state)
    assert state.buffers is buffers  # written in place
    continued, state = engine._run(ids[5:], state)
    assert state.capacity >= len(ids) + 2 and state.buffers is not buffers
    np.testing.assert_allclose(continued, full, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(state.buffers[-1][:, :, :len(ids)], _cache_of(built["qwen2-float32"], ids), atol=1e-4, rtol=1e-4)


def test_a_long_prompt_runs_in_passes_into_one_set_of_buffers_and_gives_what_one_pass_gives(built, monkeypatch):
    monkeypatch.setattr(onnx_engine, "FIRST_PASS_CHUNK_IDS", 4)
    engine, ids = _engine(built["qwen2-float32"], cached=0), _ids(built["qwen2-float32"])
    one_pass, _ = engine._run(ids, None)
    passes: list[tuple[int, int]] = []
    run = engine._run

    def counted(chunk, state, positions=1):
        passes.append((len(chunk), id(state.buffers[0])))
        return run(chunk, state, positions)

    monkeypatch.setattr(engine, "_run", counted)
    logits, state = engine._start(ids)
    assert [n for n, _ in passes] == [4] * (len(ids) // 4) + ([len(ids) % 4] if len(ids) % 4 else [])
    assert len({buffers for _, buffers in passes}) == 1  # room made once, up front: no pass copies the cache
    np.testing.assert_allclose(logits[-1], one_pass[-1], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(state.buffers[-1][:, :, :len(ids)], _cache_of(built["qwen2-float32"], ids), atol=1e-4, rtol=1e-4)


def test_logits_of_several_positions_are_those_of_passes_ending_there(built):
    engine, ids = _engine(built["qwen2-float32"]), _ids(built["qwen2-float32"])
    _, head = engine._run(ids[:-4], None)
    rows, state = engine._run(ids[-4:], head, positions=3)
    assert rows.shape[0] == 3 and state.ids == ids
    for back, row in zip((2, 1, 0), rows):
        np.testing.assert_allclose(row, engine._run(ids[:len(ids) - back], None)[0][-1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_guessing_ahead_changes_no_output_and_keeps_a_consistent_cache(built, quantization):
    """In float32 drafts change nothing. In int8 a pass over one id and a pass over several quantize
    their inputs differently (gguf_onnx `_linear_8bit`: one scale for all rows of a pass), so a near tie of the random model may go
    the other way (the random model's logits are nearly flat; even a run without drafts picks a third
    choice of a full pass once): there each id of a run with drafts must be among the top three of
    a full pass over the same prefix, which a guess accepted unchecked is not."""
    model_dir = built[f"qwen2-{quantization}"]
    tokenizer = CodeTokenizer(model_dir)
    prompts = [tokenizer.encode(text) for text in (TEXT, TEXT * 3, "x = 1\ny = 2\nx = 1\ny =", "def add(a, b):\n    return a")]
    plain, guessing = _engine(model_dir, draft_tokens=0), _engine(model_dir, draft_tokens=4)
    for ids in prompts:
        drafted = list(guessing.stream(ids, 0, 24, []))
        if quantization == "float32":
            assert drafted == list(plain.stream(ids, 0, 24, []))
        else:
            reference = _engine(model_dir, cached=0, draft_tokens=0)
            for i, token in enumerate(drafted):
                assert token in top_k(reference._run(ids + drafted[:i], None)[0][-1], 3)
        for state in guessing.cache._states:  # what a rejected guess added was cut off again
            assert len(state.ids) <= state.capacity
            if quantization == "float32":
                np.testing.assert_allclose(state.buffers[-1][:, :, :len(state.ids)], _cache_of(model_dir, state.ids), atol=1e-4, rtol=1e-4)
    stats = guessing.prompt_cache_stats()
    assert stats["drafted_ids"] > 0 and 0 <= stats["accepted_ids"] <= stats["drafted_ids"]
    assert plain.prompt_cache_stats()["drafted_ids"] == 0
    assert len(list(guessing.stream(prompts[1], 0, 2, []))) <= 2  # a guess never runs past max_new_tokens


def test_prompt_lookup_drafts_what_followed_the_latest_occurrence_of_the_longest_tail():
    ids = np.array([1, 2, 3, 9, 1, 2, 3, 7, 8, 5, 2, 3])
    assert draft(ids, 2) == [7, 8]  # "2 3" occurred twice: the latest one wins
    assert draft(np.array([5, 1, 2, 3, 4, 6, 2, 3, 8, 1, 2, 3]), 3) == [4, 6, 2]  # "1 2 3" beats the later "2 3"
    assert draft(np.array([1, 2, 3, 4]), 3) == []  # no tail recurs
    assert draft(np.array([4, 1, 4]), 3) == []  # one id alone is not looked up
    assert draft(ids, 0) == [] and draft(np.array([1, 2]), 3) == []
    assert draft(np.array([1, 2, 1, 2]), 5) == [1, 2]  # what there is, up to the end


def test_closing_a_stream_stops_it_and_keeps_what_it_computed(built):
    model_dir = built["qwen2-int8"]
    engine, ids = _engine(model_dir, draft_tokens=0), _ids(model_dir)
    stream = engine.stream(ids, 0, 40, [])
    taken = [next(stream) for _ in range(3)]
    stream.close()
    cache = engine.cache
    (state,) = cache._states
    assert state.ids == ids + taken[:2]  # the third id was returned but never run through the model


def test_a_refused_first_token_names_the_most_likely_ones(built):
    model_dir = built["qwen2-int8"]
    engine, ids = _engine(model_dir), _ids(model_dir)
    expected = _engine(model_dir).next_token_candidates(ids, 0, 5)  # a pass over the whole prompt, as below
    with pytest.raises(FirstTokenRejected) as refused:
        list(engine.stream_checked(ids, 0, 8, [], lambda token: False, 5))
    assert refused.value.candidates == expected
    assert list(engine.stream_checked(ids, 0, 8, [], lambda token: True, 5))[0] == expected[0]


def test_a_prefilled_prompt_is_continued_by_its_request_and_generates_what_a_cold_one_does(built, monkeypatch):
    monkeypatch.setattr(onnx_engine, "PREFILL_CHUNK_IDS", 4)  # several passes over the tiny prompt
    model_dir = built["qwen2-float32"]
    ids, end = _ids(model_dir), ["<|im_end|>"]
    cold = list(_engine(model_dir).stream(ids, 0, 10, end))
    engine = _engine(model_dir)
    assert engine.prefill(ids, lambda: False) == len(ids) - 1  # the last id is the request's to run
    (state,) = engine.cache._states
    np.testing.assert_allclose(state.buffers[-1][:, :, :len(ids) - 1], _cache_of(model_dir, ids[:-1]), atol=1e-5, rtol=1e-5)
    assert engine.prompt_cache_stats()["hits"] == 0 and engine.prompt_cache_stats()["fills"] == 0  # not a request
    assert engine.prefill(ids, lambda: False) == 0  # held already
    assert list(engine.stream(ids, 0, 10, end)) == cold
    stats = engine.prompt_cache_stats()
    assert (stats["hits"], stats["reused_ids"], stats["computed_ids"], stats["prefilled_ids"]) == (1, len(ids) - 1, 1, len(ids) - 1)


def test_a_prefill_stops_between_passes_and_keeps_what_it_ran(built, monkeypatch):
    monkeypatch.setattr(onnx_engine, "PREFILL_CHUNK_IDS", 4)
    model_dir = built["qwen2-int8"]
    engine, ids = _engine(model_dir), _ids(model_dir)
    checks = iter([False, False, True])
    assert engine.prefill(ids, lambda: next(checks)) == 8  # two passes, then told to stop
    assert [s.ids for s in engine.cache._states] == [ids[:8]]
    assert engine.prefill(ids, lambda: True) == 0 and [s.ids for s in engine.cache._states] == [ids[:8]]
    assert engine.prefill(ids, lambda: False) == len(ids) - 9  # continues where it stopped
    assert [s.ids for s in engine.cache._states] == [ids[:-1]]
    assert engine.prefill([], lambda: False) == 0 and engine.prefill(ids[:1], lambda: False) == 0


def test_prefix_cache_keeps_the_most_recent_states_and_never_hands_one_out_twice():
    cache = PrefixCache(2)

    def state(ids: list[int]) -> KVState:
        return KVState(ids, [np.zeros((1, 1, len(ids) + 1, 2), np.float32)])

    assert cache.take([1, 2, 3]) is None
    for ids in ([1, 2, 3], [4, 5, 6], [1, 2, 9, 9]):
        cache.put(state(ids))
    assert [s.ids for s in cache._states] == [[4, 5, 6], [1, 2, 9, 9]]
    taken = cache.take([1, 2, 9, 7])
    assert taken.ids == [1, 2, 9] and taken.capacity == 5  # cut back in the same buffer
    assert [s.ids for s in cache._states] == [[4, 5, 6]]  # out while in use
    assert cache.take([4, 5, 6]).ids == [4, 5]  # one id is always left to run
    assert cache.take([8]) is None
    assert common_prefix([1, 2, 3], [1, 2]) == 2 and common_prefix([], [1]) == 0
    assert PrefixCache(0).take([1]) is None
    bounded = PrefixCache(8, max_bytes=2 * state([1, 2, 3]).nbytes)
    for ids in ([1, 2, 3], [4, 5, 6], [7, 8, 9]):
        bounded.put(state(ids))
    assert [s.ids for s in bounded._states] == [[4, 5, 6], [7, 8, 9]]  # the budget, not the capacity, dropped the oldest


def test_8bit_rows_round_trip_with_a_scale_per_row():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(8, 70)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)[:, None]
    codes, scales = quantize_rows(weight)
    restored = codes.astype(np.float32) * scales[:, None]
    assert codes.dtype == np.int8 and scales.shape == (8,) and np.abs(codes).max() == 127
    assert np.all(np.abs(restored - weight).max(axis=1) <= scales / 2 + 1e-6)  # half a step of its own row


def _products(x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x @ weight.T through an int8 graph's two forms of product: one input scale for a pass's
    rows, and a scale per row (`rows_apart`)."""
    import onnxruntime
    from onnx import TensorProto, helper

    from inference.models.gguf_onnx import _Graph

    graph = _Graph("int8")
    outputs = [graph.linear("inputs_embeds", "shared", weight), graph.linear("inputs_embeds", "apart", weight, rows_apart=True)]
    model = helper.make_model(
        helper.make_graph(graph.nodes, "products", [helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, [1, None, x.shape[1]])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], graph.initializers),
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shared, apart = session.run(outputs, {"inputs_embeds": x[None]})
    return shared[0], apart[0]


def test_a_huge_row_costs_the_other_rows_their_precision_only_where_a_pass_shares_one_scale():
    """The feed-forward's down matrix sees rare rows hundreds of times larger than the rest: it is
    built with a scale per row (`rows_apart`), the other matrices with one scale per pass."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(24, 64)).astype(np.float32)
    x = rng.normal(size=(4, 64)).astype(np.float32)
    x[0] *= 500.0
    exact = x @ weight.T
    shared, apart = _products(x, weight)
    error = lambda got: np.linalg.norm(got[1:] - exact[1:]) / np.linalg.norm(exact[1:])  # noqa: E731
    assert error(apart) < 0.02 < 0.2 < error(shared)
    one_shared, one_apart = _products(x[1:2], weight)  # one row: the same quantization either way
    np.testing.assert_allclose(one_shared, one_apart, rtol=1e-5, atol=1e-5)
    assert np.linalg.norm(one_apart - exact[1:2]) / np.linalg.norm(exact[1:2]) < 0.02


def test_4bit_blocks_round_trip_with_their_zero_points():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 70)).astype(np.float32) + 0.5  # not centred: the zero point moves
    codes, scales, zeros = quantize_blocks_4bit(weight)
    assert codes.shape == (4, 3, 16) and scales.shape == (12,) and zeros.shape == (4 * 2,)
    unpacked = np.stack([codes & 15, codes >> 4], axis=-1).reshape(4, 3, 32).astype(np.float32)
    zero = np.stack([zeros & 15, zeros >> 4], axis=-1).reshape(4, -1)[:, :3].astype(np.float32)
    restored = ((unpacked - zero[..., None]) * scales.reshape(4, 3, 1)).reshape(4, -1)[:, :70]
    assert np.abs(restored - weight).max() <= scales.max() * 1.01  # half a step, and the zero point's rounding


def test_int4_graph_stays_near_float32_and_generates(built, tmp_path):
    gguf = built["qwen2-gguf"]
    int4 = convert_gguf_to_onnx(gguf, tmp_path / "int4", "int4")
    ids = _ids(int4)
    exact = _engine(built["qwen2-float32"])._run(ids, None)[0][-1]
    ours = _engine(int4)._run(ids, None)[0][-1]
    eight = _engine(built["qwen2-int8"])._run(ids, None)[0][-1]
    assert 0 < np.linalg.norm(eight - exact) < np.linalg.norm(ours - exact) < 0.5 * np.linalg.norm(exact)
    assert read_metadata(int4)["quantization"] == "int4"
    model = CodeModel(int4, "cpu", "int4", 1)
    assert model.backend is Backend.ONNXRUNTIME and model.compute_type == "int4"
    assert isinstance("".join(model.complete("def add(a, b):\n    return", max_new_tokens=6)), str)


def test_directory_metadata_and_a_corrupt_weights_file(built, tmp_path):
    model_dir = built["qwen2-int8"]
    assert is_onnx_dir(model_dir) and read_metadata(model_dir)["runtime"] == "onnxruntime"
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in model_dir.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    verify_model_bin(copy)
    metadata = read_metadata(copy)
    (copy / "codet5_lsp.json").write_text(json.dumps({**metadata, "graph_version": 1}))
    with pytest.raises(CorruptModelError, match="another version of the ONNX Runtime engine"):
        verify_model_bin(copy)  # a graph of an older interface is rebuilt, not run
    (copy / "codet5_lsp.json").write_text(json.dumps(metadata))
    with open(copy / WEIGHTS_FILE, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(CorruptModelError, match=WEIGHTS_FILE):
        verify_model_bin(copy)
    with pytest.raises(CorruptModelError, match="codet5-quantize SOURCE"):
        _engine(copy)  # refused before ONNX Runtime reads it


def test_a_local_onnx_directory_loads_on_onnx_runtime(built):
    model = CodeModel(built["qwen2-int8"], "cpu", "int8", 1)
    assert model.backend is Backend.ONNXRUNTIME
    text = "".join(model.complete("def add(a, b):\n    return", max_new_tokens=6))
    assert isinstance(text, str)
    assert model.prompt_cache_stats()["fills"] >= 1


def test_runtime_choice():
    assert pick_runtime("auto", "default", "cpu", "int8") == "onnxruntime"
    assert pick_runtime("auto", "default", "cpu", "float32") == "ctranslate2"
    assert pick_runtime("auto", "default", "cuda", "int8_float16") == "ctranslate2"
    assert pick_runtime("auto", "/some/dir", "cpu", "int8") == "ctranslate2"
    assert pick_runtime("ctranslate2", "default", "cpu", "int8") == "ctranslate2"
    with pytest.raises(ValueError, match="int8 on the CPU"):
        pick_runtime("onnxruntime", "default", "cuda", "int8_float16")
    with pytest.raises(ValueError, match="runtime must be"):
        pick_runtime("tensorrt", "default", "cpu", "int8")
    assert pick_runtime("auto", "default", "cpu", "int4") == "onnxruntime"  # 4-bit weights: ONNX Runtime's alone
    with pytest.raises(ValueError, match="int4 runs on the onnxruntime runtime"):
        pick_runtime("ctranslate2", "default", "cpu", "int4")
    with pytest.raises(ValueError, match="int4 runs on the CPU"):
        pick_compute_type("int4", "cuda")
    assert pick_compute_type("int4", "cpu") == "int4"
    assert embedded_model_dir("default", "onnxruntime", "int4").name == "default-onnx-int4"
    with pytest.raises(ModelNotFoundError, match="ONNX Runtime runs the embedded completion models"):
        resolve_for("Salesforce/codet5p-220m", "cpu", "int4", "auto", local_files_only=True)


def test_onnx_runtime_is_refused_for_a_model_it_cannot_build():
    with pytest.raises(ModelNotFoundError, match="ONNX Runtime runs the embedded completion models"):
        resolve_model("Salesforce/codet5p-220m", runtime="onnxruntime", local_files_only=True)
    assert Backend.ONNXRUNTIME.value == "onnxruntime"
