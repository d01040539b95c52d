"""GGUF -> CTranslate2 with numpy alone (inference/models/gguf_ct2.py), and the build cache's robustness:
leftovers of killed builds, a corrupted model.bin, a full disk.

The GGUFs are tiny Qwen2- and Llama-shaped decoders with random weights in the tensor types of the
real Qwen2.5-Coder Q4_K_M file, written at test time (tests/tiny_gguf.py). Comparisons with the
transformers path are skipped where torch or transformers are not installed.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import ctranslate2
import ctranslate2.specs  # before any test hides torch: it checks for torch once, at import
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

import inference.models.convert
from inference.models import cache, gguf_ct2
from inference.models.cache import CACHE_ENV, building, models_dir, remove_build_leftovers
from inference.models.convert import (
    METADATA_FILE,
    CacheWriteError,
    ConversionError,
    CorruptModelError,
    convert_gguf_to_ct2,
    convert_to_ct2,
    gguf_to_hf,
    model_bin_intact,
    read_metadata,
    verify_model_bin,
)
from inference.engines.tokenizer import CodeTokenizer
from tests.tiny_gguf import CONTROL_TOKENS, DecoderShape, train_bpe_tokenizer, write_random_gguf

HAS_HF = all(importlib.util.find_spec(name) for name in ("torch", "transformers", "accelerate"))
needs_hf = pytest.mark.skipif(not HAS_HF, reason="the transformers path needs torch, transformers and accelerate")
LLAMA = DecoderShape(architecture="llama", rope_theta=10_000.0)
TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "<|fim_prefix|>def f(x):\n    <|fim_suffix|>\n    return y<|fim_middle|>",
    "x = 12345 + 0.5e-3  # don't\r\n\tcafé ünïcödé 中文 😀\n\n\n    \n",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
    "   leading spaces and trailing   ",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Random GGUFs: Qwen2 tied, Llama with its own output matrix, Qwen2 storing one matrix twice,
    Qwen2 with its own output matrix."""
    root = tmp_path_factory.mktemp("gguf")
    qwen_tokenizer, gpt2_tokenizer = train_bpe_tokenizer(), train_bpe_tokenizer(qwen2_split=False)
    return {
        "qwen2": write_random_gguf(root / "qwen2.gguf", qwen_tokenizer),
        "llama": write_random_gguf(root / "llama.gguf", gpt2_tokenizer, LLAMA, add_bos=True, output="random", seed=1),
        "qwen2-twice": write_random_gguf(root / "qwen2-twice.gguf", qwen_tokenizer, output="copy", seed=2),
        "qwen2-untied": write_random_gguf(root / "qwen2-untied.gguf", qwen_tokenizer, output="random", seed=3),
    }


def _logits(model_dir: Path, ids: list[int]) -> np.ndarray:
    return np.asarray(ctranslate2.Generator(str(model_dir)).forward_batch([ids]))


def _greedy(model_dir: Path, prompt: list[str], steps: int = 24) -> list[int]:
    result = ctranslate2.Generator(str(model_dir)).generate_batch([prompt], max_length=steps, include_prompt_in_result=False)
    return result[0].sequences_ids[0]


def _via_transformers(gguf_path: Path, out: Path, quantization: str) -> Path:
    """The old path: transformers dequantizes to float32, CTranslate2's converter converts."""
    hf_dir = gguf_to_hf(gguf_path, out.parent / f"{out.name}-hf")
    return convert_to_ct2(hf_dir, out, quantization)


def _sibling_names(path: Path) -> set[str]:
    return {entry.name for entry in path.parent.iterdir()}


# --- conversion --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qwen2", "llama"])
def test_conversion_runs_without_transformers(files, tmp_path, name, monkeypatch):
    for module in ("torch", "transformers"):
        monkeypatch.setitem(sys.modules, module, None)  # importing them fails
    progress: list[str] = []
    out = convert_gguf_to_ct2(files[name], tmp_path / "out", "int8", progress.append)
    metadata = read_metadata(out)
    assert metadata["architecture"] == gguf_ct2.HF_ARCHITECTURES[name] and metadata["context_length"] == 512
    assert metadata["source"] == str(files[name]) and "transformers" not in metadata
    assert {"Converting to CTranslate2 int8"} <= set(progress)
    assert _sibling_names(out) == {"out"}
    tokenizer = CodeTokenizer(out)
    prompt = tokenizer.tokens(tokenizer.encode(TEXTS[0]))
    assert len(_greedy(out, prompt, 8)) == 8


@needs_hf
@pytest.mark.parametrize("name", ["qwen2", "llama"])
@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_numpy_conversion_equals_the_transformers_path(files, tmp_path, name, quantization):
    ours = convert_gguf_to_ct2(files[name], tmp_path / "numpy", quantization)
    reference = _via_transformers(files[name], tmp_path / "transformers", quantization)
    for file in ("config.json", "vocabulary.json"):
        assert json.loads((ours / file).read_text()) == json.loads((reference / file).read_text())
    tokenizer = CodeTokenizer(ours)
    for text in TEXTS:
        ids = tokenizer.encode_with_specials(text)
        np.testing.assert_allclose(_logits(ours, ids), _logits(reference, ids), atol=1e-4, rtol=1e-4)
        assert _greedy(ours, tokenizer.tokens(ids)) == _greedy(reference, tokenizer.tokens(ids))


@needs_hf
@pytest.mark.parametrize("name", ["qwen2", "llama"])
def test_tokenizer_equals_transformers_gguf_tokenizer(files, tmp_path, name):
    from transformers import AutoTokenizer

    out = convert_gguf_to_ct2(files[name], tmp_path / "out", "int8")
    ours, converted = CodeTokenizer(out), AutoTokenizer.from_pretrained(out)
    theirs = AutoTokenizer.from_pretrained(files[name].parent, gguf_file=files[name].name)
    assert json.loads((out / "tokenizer.json").read_text()) == json.loads(theirs.backend_tokenizer.to_str())
    for text in TEXTS:
        for specials in (False, True):
            expected = theirs(text, add_special_tokens=specials).input_ids
            assert converted(text, add_special_tokens=specials).input_ids == expected
            assert (ours.encode_with_specials(text) if specials else ours.encode(text)) == expected
    assert (ours.bos_token, ours.eos_token) == (theirs.bos_token, theirs.eos_token)


def test_tokenizer_from_metadata(files, tmp_path):
    qwen_dir = convert_gguf_to_ct2(files["qwen2"], tmp_path / "qwen", "int8")
    llama_dir = convert_gguf_to_ct2(files["llama"], tmp_path / "llama", "int8")
    qwen, llama = CodeTokenizer(qwen_dir), CodeTokenizer(llama_dir)
    for token in CONTROL_TOKENS:
        assert qwen.encode(f"a{token}b")[1] == qwen.token_id(token)  # whole, never split
    for text in TEXTS[0], TEXTS[2], TEXTS[4]:
        assert qwen.decode(qwen.encode(text)) == text and llama.decode(llama.encode(text)) == text
    assert qwen.tokens(qwen.encode("12345")) == list("12345")  # qwen2's split: one digit at a time
    split = json.loads((qwen_dir / "tokenizer.json").read_text())["pre_tokenizer"]["pretokenizers"][0]
    assert split["pattern"]["Regex"] == gguf_ct2.PRE_TOKENIZER_SPLITS["qwen2"]  # tokenizer.ggml.pre
    assert json.loads((llama_dir / "tokenizer.json").read_text())["pre_tokenizer"]["use_regex"]  # "gpt-2": GPT-2's
    assert (qwen.bos_token, qwen.eos_token) == ("<|endoftext|>", "<|im_end|>")
    assert not qwen.template_adds_bos and llama.template_adds_bos  # tokenizer.ggml.add_bos_token


def test_one_matrix_stored_twice_is_written_once(files, tmp_path):
    model = gguf_ct2.GGUFModel(files["qwen2-twice"])
    assert model.embedding_tensor == "output.weight" and model.config.tied  # the F16 copy beats the Q8_0 one
    assert gguf_ct2.GGUFModel(files["llama"]).embedding_tensor is None  # two different matrices
    size = {name: (convert_gguf_to_ct2(files[name], tmp_path / name, "int8") / "model.bin").stat().st_size
            for name in ("qwen2", "qwen2-twice", "qwen2-untied")}
    assert size["qwen2-twice"] == size["qwen2"]
    assert size["qwen2-untied"] - size["qwen2-twice"] >= model.config.vocab_size * model.config.hidden  # int8 rows
    twice = tmp_path / "qwen2-twice"
    tokenizer = CodeTokenizer(twice)
    assert len(_greedy(twice, tokenizer.tokens(tokenizer.encode(TEXTS[0])), 8)) == 8


@needs_hf
def test_one_matrix_stored_twice_is_close_to_the_transformers_path(files, tmp_path):
    ours = convert_gguf_to_ct2(files["qwen2-twice"], tmp_path / "numpy", "float32")
    reference = _via_transformers(files["qwen2-twice"], tmp_path / "transformers", "float32")
    ids = CodeTokenizer(ours).encode(TEXTS[0] + TEXTS[2])
    expected, actual = _logits(reference, ids), _logits(ours, ids)
    assert np.linalg.norm(actual - expected) < 0.02 * np.linalg.norm(expected)  # Q8_0 vs F16 embedding: 0.9% here
    assert (actual.argmax(-1) == expected.argmax(-1)).mean() > 0.9


@needs_hf
@pytest.mark.parametrize("name", ["qwen2", "llama"])
def test_hf_weights_equal_transformers_dequantization(files, tmp_path, name):
    from safetensors.numpy import load_file

    weights, config = gguf_ct2.hf_weights(gguf_ct2.GGUFModel(files[name]))
    hf_dir = gguf_to_hf(files[name], tmp_path / "hf")
    expected = load_file(str(hf_dir / "model.safetensors"))
    if config["tie_word_embeddings"]:
        expected.pop("lm_head.weight", None)
    assert set(weights) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(weights[key], value, err_msg=key)
    reference = json.loads((hf_dir / "config.json").read_text())
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
                "vocab_size", "tie_word_embeddings", "max_position_embeddings"):
        assert config[key] == reference[key], key


def test_summarizer_assembles_from_a_gguf(tmp_path):
    pytest.importorskip("torch")
    from quantize.summarizer.seq2seq import DecoderSeq2Seq, Seq2SeqShape
    from quantize.summarizer.training import save_delta
    from tests.tiny_gguf import write_llama_gguf
    from tests.tiny_models import get_tiny_models

    from inference.summarizer_assembly import assemble_summarizer, read_checkpoint

    tiny = get_tiny_models()
    checkpoint = read_checkpoint(tiny.llama_hf)
    shape = Seq2SeqShape.from_config(checkpoint.config, encoder_layers=1, cross_every=1)
    delta = save_delta(DecoderSeq2Seq.from_decoder(checkpoint.weights, shape), tmp_path / "delta", {}, "<s>", "</s>")
    from_hf = assemble_summarizer(tiny.llama_hf, delta, tmp_path / "from-hf", "float32")
    from_gguf = assemble_summarizer(write_llama_gguf(tiny.llama_hf, tmp_path / "tiny.gguf"), delta, tmp_path / "from-gguf",
                                    "float32")
    assert (from_gguf / "model.bin").read_bytes() == (from_hf / "model.bin").read_bytes()
    assert json.loads((from_gguf / "shared_vocabulary.json").read_text()) == json.loads(
        (from_hf / "shared_vocabulary.json").read_text())
    assert verify_model_bin(from_gguf) is None


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_architecture_is_named(files, tmp_path, monkeypatch):
    tokenizer = train_bpe_tokenizer()
    odd = write_random_gguf(tmp_path / "odd.gguf", tokenizer, DecoderShape(architecture="mamba"))
    with pytest.raises(ConversionError, match="'mamba'.*llama, qwen2"):
        gguf_ct2.GGUFModel(odd).config  # noqa: B018
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConversionError) as failure:
        convert_gguf_to_ct2(odd, tmp_path / "out")
    assert str(odd) in str(failure.value) and "codet5-lsp[hf]" in str(failure.value) and "mamba" in str(failure.value)
    assert _sibling_names(tmp_path / "out") == {"odd.gguf"}


def test_unknown_tensor_type_is_named(tmp_path):
    odd = write_random_gguf(tmp_path / "iq.gguf", train_bpe_tokenizer(), tensor_type=Q.IQ2_XXS)
    with pytest.raises(ConversionError, match=r"blk\.0\.attn_q\.weight has type IQ2_XXS") as failure:
        convert_gguf_to_ct2(odd, tmp_path / "out")
    assert str(odd) in str(failure.value)
    assert _sibling_names(tmp_path / "out") == {"iq.gguf"}


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.01])
def test_truncated_file_is_reported(files, tmp_path, keep):
    data = files["qwen2"].read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ConversionError, match="truncated|not a readable GGUF") as failure:
        convert_gguf_to_ct2(cut, tmp_path / "out")
    assert str(cut) in str(failure.value)
    assert _sibling_names(tmp_path / "out") == {"cut.gguf"}


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConversionError, match="not found"):
        convert_gguf_to_ct2(tmp_path / "nowhere.gguf", tmp_path / "out")


# --- cache robustness -------------------------------------------------------------------------


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    models_dir().mkdir(parents=True)
    return models_dir()


def _leftover(parent: Path, name: str, age_s: float = 3600.0) -> Path:
    path = parent / name
    (path / "hf").mkdir(parents=True)
    (path / "hf" / "model.safetensors").write_bytes(b"half")
    stamp = time.time() - age_s
    for item in (path / "hf" / "model.safetensors", path / "hf", path):
        os.utime(item, (stamp, stamp))
    return path


def test_leftovers_of_killed_builds_are_removed(cache_dir):
    leftovers = [
        _leftover(cache_dir, ".qwen2.5-coder-0.5b-build-x1y2"),
        _leftover(cache_dir, ".gguf-hf-abc"),
        _leftover(cache_dir, ".qwen2.5-coder-0.5b-int8.k3j4.partial"),
        _leftover(cache_dir, ".smollm2-135m-int8.zz.old"),
        _leftover(cache_dir / "bench", ".gguf-build-q"),
    ]
    kept = [_leftover(cache_dir, "smollm2-135m-int8"), _leftover(cache_dir, ".not-ours")]
    recent = _leftover(cache_dir, ".other-build-now", age_s=1.0)  # a build outside this package, still writing
    assert sorted(remove_build_leftovers()) == sorted(leftovers)
    assert all(path.exists() for path in [*kept, recent]) and not any(path.exists() for path in leftovers)
    assert remove_build_leftovers(now=time.time() + 2 * cache.IDLE_BEFORE_REMOVAL_S) == [recent]


def test_leftovers_stay_while_another_build_runs(cache_dir):
    leftover = _leftover(cache_dir, ".gguf-hf-live")
    with building(cache_dir / "model-int8"):
        assert remove_build_leftovers() == []
    assert leftover.exists()
    assert remove_build_leftovers() == [leftover]


def test_build_killed_mid_way_is_cleaned_at_the_next_start(cache_dir):
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from inference.models.cache import atomic_directory\n"
        "with atomic_directory(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'model.bin').write_bytes(b'x' * 1000)\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(cache_dir / "model-int8")], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, CACHE_ENV: str(cache_dir.parent)}, cwd=Path(__file__).parents[2])
    try:
        partial = Path(process.stdout.readline().strip())
        assert partial.is_dir()
        assert remove_build_leftovers(now=time.time() + 1e6) == []  # the builder is alive: its lock is held
    finally:
        process.kill()
        process.wait()
    assert remove_build_leftovers(now=time.time() + 1e6) == [partial]
    assert not (cache_dir / "model-int8").exists()


def _corrupt(path: Path, offset: int, size: int = 4096) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(os.urandom(size))


def test_corrupted_model_bin_is_reported_at_load(files, cache_dir):
    model = convert_gguf_to_ct2(files["qwen2"], cache_dir / "qwen2.5-coder-0.5b-int8", "int8")
    recorded = read_metadata(model)["model_bin"]
    assert recorded["size"] == (model / "model.bin").stat().st_size and model_bin_intact(model)
    from inference.engines.ct2_engines import DecoderEngine

    tokenizer = CodeTokenizer(model)
    DecoderEngine(model, tokenizer, device="cpu", compute_type="int8", threads=1, max_cached_prompts=1).release()
    _corrupt(model / "model.bin", recorded["size"] // 2)  # bytes changed in the middle
    assert not model_bin_intact(model)
    with pytest.raises(CorruptModelError, match=r"corrupt.*codet5-lsp models pull qwen2\.5-coder-0\.5b`"):
        DecoderEngine(model, tokenizer, device="cpu", compute_type="int8", threads=1, max_cached_prompts=1)
    with open(model / "model.bin", "r+b") as handle:
        handle.truncate(recorded["size"] - 10)
    with pytest.raises(CorruptModelError, match=f"has {recorded['size'] - 10} bytes"):
        verify_model_bin(model)


def test_corrupted_model_outside_the_cache_says_how_to_convert_it(files, tmp_path):
    model = convert_gguf_to_ct2(files["llama"], tmp_path / "mine", "int8")
    _corrupt(model / "model.bin", 0)
    with pytest.raises(CorruptModelError, match="codet5-quantize SOURCE --out"):
        verify_model_bin(model)
    metadata = read_metadata(model)
    del metadata["model_bin"]  # built before checksums were recorded: nothing to check against
    (model / METADATA_FILE).write_text(json.dumps(metadata))
    assert model_bin_intact(model)


@pytest.mark.parametrize("stage", ["temporary directory", "tokenizer", "weights", "metadata"])
def test_full_disk_gives_the_hint(files, tmp_path, monkeypatch, stage):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = {
        "temporary directory": (cache.tempfile, "mkdtemp"),
        "tokenizer": (gguf_ct2.GGUFTokenizer, "save"),
        "weights": (ctranslate2.specs.TransformerDecoderModelSpec, "save"),
        "metadata": (inference.models.convert, "model_bin_checksum"),
    }[stage]
    monkeypatch.setattr(*target, full)
    out = tmp_path / "cache" / "model-int8"
    with pytest.raises(CacheWriteError) as failure:
        convert_gguf_to_ct2(files["qwen2"], out, "int8")
    message = str(failure.value)
    assert f"cannot write the converted model to {out.parent}: No space left on device. Free some space" in message
    assert CACHE_ENV in message and "Errno" not in message
    assert not out.exists() and list(out.parent.iterdir()) == []  # nothing half-written


def test_next_start_removes_leftovers(files, cache_dir):
    from inference.models.resolve import resolve_model

    model = convert_gguf_to_ct2(files["qwen2"], cache_dir / "qwen2-int8", "int8")
    leftover = _leftover(cache_dir, ".qwen2.5-coder-0.5b-build-killed")
    assert resolve_model(str(model)).path == model
    assert not leftover.exists() and model.is_dir()


@needs_hf
def test_corrupted_cached_conversion_is_built_again(tiny_models, cache_dir):
    from inference.models.resolve import resolve_model

    first = resolve_model(str(tiny_models.llama_hf)).path
    _corrupt(first / "model.bin", (first / "model.bin").stat().st_size // 2)
    assert not model_bin_intact(first)
    again = resolve_model(str(tiny_models.llama_hf)).path
    assert again == first and model_bin_intact(again)
