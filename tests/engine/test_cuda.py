"""The CUDA path: CTranslate2 int8_float16 (and the other GPU types), transformers and bitsandbytes 8/4-bit.

Skipped where CTranslate2 sees no CUDA device (CI has none); run on a GPU machine with
`pytest tests/engine/test_cuda.py`. The tiny models memorize their corpus with wide margins, so
greedy decoding must reproduce it exactly at float16 activations too.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import ctranslate2
import pytest

from inference import CodeModel
from inference.models.convert import convert_to_ct2
from inference.engines.ct2_engines import DecoderEngine
from inference.engines.hf_engine import TransformersDecoderEngine
from inference.models.prompt_formats import plain_prompt
from inference.engines.tokenizer import CodeTokenizer
from tests.engine.test_engine import CLEAN_PREFIXES, CUT_PREFIXES, END, cache_env, long_prefix  # noqa: F401 (fixture)
from tests.engine.test_quantize import fidelity_figures, run_cli
from tests.tiny_models import CORPUS, INFILL_EXAMPLES, SUMMARIES, TinyModels

pytestmark = pytest.mark.skipif(ctranslate2.get_cuda_device_count() == 0, reason="no CUDA device for CTranslate2")

CT2_MODELS = ["llama_int8", "codegen_int8", "t5_int8", "llama_float32", "t5_float32"]


@pytest.fixture(scope="module")
def load(tiny_models: TinyModels, cache_env: None) -> Callable[[str], CodeModel]:
    """Models by name on the GPU with the default compute type, loaded once per module."""
    loaded: dict[str, CodeModel] = {}

    def get(name: str) -> CodeModel:
        if name not in loaded:
            loaded[name] = CodeModel(getattr(tiny_models, name), device="cuda")
        return loaded[name]

    return get


@pytest.mark.parametrize("name", CT2_MODELS)
def test_auto_compute_type_on_cuda_is_int8_float16(load: Callable[[str], CodeModel], name: str) -> None:
    assert (load(name).device, load(name).compute_type) == ("cuda", "int8_float16")


@pytest.mark.parametrize("prefix", [*CLEAN_PREFIXES, *CUT_PREFIXES])
@pytest.mark.parametrize("name", CT2_MODELS)
def test_completion_on_cuda_writes_rest_of_corpus(load: Callable[[str], CodeModel], name: str, prefix: str) -> None:
    stream = load(name).complete(prefix, max_new_tokens=200)
    assert stream.read() == CORPUS[len(prefix) :]
    assert stream.finish_reason == "end"


@pytest.mark.parametrize("example", INFILL_EXAMPLES)
def test_span_infilling_on_cuda(load: Callable[[str], CodeModel], example: tuple[str, str, str]) -> None:
    prefix, middle, suffix = example
    stream = load("t5_int8").complete(prefix, suffix)
    assert (stream.read(), stream.finish_reason) == (middle, "end")


@pytest.mark.parametrize("code", SUMMARIES)
@pytest.mark.parametrize("name", ["t5_int8", "t5_float32"])
def test_summary_on_cuda(load: Callable[[str], CodeModel], name: str, code: str) -> None:
    assert load(name).summarize(code).read() == SUMMARIES[code]


def test_close_mid_stream_on_cuda(load: Callable[[str], CodeModel]) -> None:
    stream = load("llama_int8").complete("def add(a, b):", max_new_tokens=100)
    first = next(stream)
    stream.close()
    assert stream.finish_reason == "closed" and stream.read() == first


@pytest.mark.parametrize("compute_type", ["float16", "bfloat16", "int8_bfloat16"])
def test_other_gpu_compute_types(tiny_models: TinyModels, cache_env: None, compute_type: str) -> None:
    model = CodeModel(tiny_models.llama_int8, device="cuda", compute_type=compute_type)
    assert model.compute_type == compute_type
    prefix = CLEAN_PREFIXES[1]
    assert model.complete(prefix, max_new_tokens=200).read() == CORPUS[len(prefix) :]


def test_static_prompt_cache_on_cuda(tiny_models: TinyModels) -> None:
    tok = CodeTokenizer(tiny_models.tokenizer_dir)
    engine = DecoderEngine(tiny_models.llama_int8, tok, device="cuda", compute_type="int8_float16", threads=1,
                           max_cached_prompts=2)
    prompt = plain_prompt(tok, long_prefix("same", "    def increment(self):\n"), 2048, None)
    assert prompt.static_len > 20
    cached = [list(engine.stream(prompt.ids, prompt.static_len, 16, END)) for _ in range(2)]
    plain = list(engine.stream(prompt.ids, 0, 16, END))
    assert cached[0] == cached[1] == plain and plain  # float16 activations may end sooner than the CPU's run
    assert len(engine.static_cache) == 1


def test_int8_float16_conversion_runs_on_cuda(tiny_models: TinyModels, cache_env: None, tmp_path: Path) -> None:
    out = convert_to_ct2(tiny_models.llama_hf, tmp_path / "llama-int8_float16", "int8_float16")
    model = CodeModel(out, device="cuda")
    prefix = CLEAN_PREFIXES[3]
    assert model.complete(prefix, max_new_tokens=200).read() == CORPUS[len(prefix) :]


def test_transformers_engine_on_cuda_matches_ct2(tiny_models: TinyModels) -> None:
    tok = CodeTokenizer(tiny_models.tokenizer_dir)
    hf = TransformersDecoderEngine(tiny_models.llama_hf, device="cuda", threads=1)
    ct2 = DecoderEngine(tiny_models.llama_float32, tok, device="cuda", compute_type="float32", threads=1,
                        max_cached_prompts=2)
    prompt = plain_prompt(tok, CLEAN_PREFIXES[1], 2048, None)
    got = list(hf.stream(prompt.ids, 0, 200, END))
    assert got == list(ct2.stream(prompt.ids, 0, 200, END))
    assert tok.decode(got) == CORPUS[len(CLEAN_PREFIXES[1]) :]


# --- bitsandbytes (the transformers backend) ------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                    reason="bitsandbytes not installed (pip install 'codet5-lsp[cuda]')")
@pytest.mark.parametrize("bits", [8, 4])
def test_bnb_checkpoint_runs_through_codemodel(tiny_models: TinyModels, cache_env: None, tmp_path: Path, bits: int) -> None:
    out = tmp_path / f"llama-bnb{bits}"
    result = run_cli(str(tiny_models.llama_hf), "--out", str(out), "--bnb", str(bits))
    assert result.returncode == 0, result.stderr
    positions, agreement, _ = fidelity_figures(result.stdout)
    assert positions > 50 and agreement >= (0.9 if bits == 8 else 0.5)
    model = CodeModel(out, device="cuda")
    assert model.backend.value == "transformers"
    prefix = CLEAN_PREFIXES[1]
    text = model.complete(prefix, max_new_tokens=40).read()
    if bits == 8:
        assert len(text) > 20 and CORPUS[len(prefix) :].startswith(text)
    else:
        assert text.strip()
