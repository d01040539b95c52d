"""CodeModel and its engines on the real CTranslate2 runtime (tiny trained models, int8 and float32)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import ctranslate2
import pytest
import torch

from inference import CapabilityError, CodeModel
from inference.models.convert import convert_to_ct2
from inference.engines.ct2_engines import DecoderEngine, EncoderDecoderEngine, StaticPromptCache
from inference.engines.hf_engine import TransformersDecoderEngine, TransformersEncoderDecoderEngine
from inference.completion.healing import heal_prefix, limit_cut
from inference.engines.healed_generation import FirstTokenRejected
from inference.engines.model import pick_compute_type, pick_device
from inference.models.prompt_formats import codet5_span_prompt, plain_prompt
from inference.engines.tokenizer import CodeTokenizer
from tests.engine.test_resolve import tiny_gpt2
from tests.tiny_models import CORPUS, INFILL_EXAMPLES, SUMMARIES, TinyModels

DECODERS = ["llama_int8", "llama_float32", "codegen_int8", "codegen_float32"]
T5S = ["t5_int8", "t5_float32"]
ALL = [*DECODERS, *T5S]
END = ["</s>"]

# Prefixes of CORPUS that need no healing cut.
CLEAN_PREFIXES = [
    "",
    "def add(a, b):",
    'def add(a, b):\n    return a + b\n\n\ndef greet(name):\n    return "Hello,',
    "def add(a, b):\n    return a +",
]
# Prefixes of CORPUS whose end is cut and re-created by the model.
CUT_PREFIXES = [
    "def add(a, b):\n    return",  # a whole word: cut with the newline + indent before it
    "def add(a, b):\n    ret",  # a partial identifier
    "def add(a, b):\n    return ",  # a trailing space
    "def add(a, b):\n    ",  # newline + indentation
    "def add(a, b):\n",  # a bare newline
    "def add(a, b):\n    return a + b\n\n",  # blank lines
    CORPUS[: CORPUS.index("self.count = 0")],  # deeper indentation
    'def add(a, b):\n    return a + b\n\n\ndef greet(name):\n    return "Hello, " + na',
]


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CODET5_LSP_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def model_dirs(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CTranslate2 directories by name; the tiny CodeGen is also converted to float32 here."""
    dirs = {name: getattr(tiny_models, name) for name in ALL if name != "codegen_float32"}
    dirs["codegen_float32"] = convert_to_ct2(
        tiny_models.codegen_hf, tmp_path_factory.mktemp("ct2") / "codegen-float32", "float32"
    )
    return dirs


@pytest.fixture(scope="module")
def load(model_dirs: dict[str, Path], cache_env: None) -> Callable[[str], CodeModel]:
    """Models by name, loaded once per module (cpu, one thread)."""
    loaded: dict[str, CodeModel] = {}

    def get(name: str) -> CodeModel:
        if name not in loaded:
            loaded[name] = CodeModel(model_dirs[name], device="cpu", cpu_threads=1)
        return loaded[name]

    return get


@pytest.fixture(scope="module")
def tok(tiny_models: TinyModels) -> CodeTokenizer:
    return CodeTokenizer(tiny_models.tokenizer_dir)


def continues_corpus(prefix: str, text: str) -> bool:
    return CORPUS.startswith(prefix + text)


@pytest.mark.parametrize("prefix", [*CLEAN_PREFIXES, *CUT_PREFIXES])
@pytest.mark.parametrize("name", DECODERS)
def test_decoder_writes_rest_of_corpus(load: Callable[[str], CodeModel], name: str, prefix: str) -> None:
    stream = load(name).complete(prefix, max_new_tokens=200)
    assert stream.read() == CORPUS[len(prefix) :]  # healed or not, the text continues the prefix as given
    assert stream.finish_reason == "end"


@pytest.mark.parametrize("prefix", [*CLEAN_PREFIXES, *CUT_PREFIXES])
@pytest.mark.parametrize("name", T5S)
def test_t5_decoder_only_mode_writes_rest_of_corpus(load: Callable[[str], CodeModel], name: str, prefix: str) -> None:
    stream = load(name).complete(prefix, max_new_tokens=200)
    assert stream.read() == CORPUS[len(prefix) :]
    assert stream.finish_reason == "end"


@pytest.mark.parametrize("name", ["llama_int8", "codegen_int8"])
def test_left_to_right_decoder_ignores_suffix(load: Callable[[str], CodeModel], name: str) -> None:
    prefix, _, suffix = INFILL_EXAMPLES[0]
    assert load(name).complete(prefix, suffix, max_new_tokens=200).read() == CORPUS[len(prefix) :]


@pytest.mark.parametrize("prefix", ["def add(a, b):\n    ret", "def add(a, b):\n    "])
@pytest.mark.parametrize("name", DECODERS)
def test_every_piece_continues_prefix(load: Callable[[str], CodeModel], name: str, prefix: str) -> None:
    text = ""
    for piece in load(name).complete(prefix, max_new_tokens=12):
        assert piece
        text += piece
        assert continues_corpus(prefix, text)
    assert len(text) > 10


@pytest.mark.parametrize("example", INFILL_EXAMPLES)
@pytest.mark.parametrize("name", T5S)
def test_t5_span_infilling_engine(
    tiny_models: TinyModels, tok: CodeTokenizer, name: str, example: tuple[str, str, str]
) -> None:
    prefix, middle, suffix = example
    engine = EncoderDecoderEngine(getattr(tiny_models, name), tok, device="cpu", compute_type="auto", threads=1)
    prompt = codet5_span_prompt(tok, prefix, suffix, 512)
    ids = list(engine.stream(prompt.source_ids, 32, [*END, "<extra_id_1>"]))
    assert tok.tokens(ids) == ["<extra_id_0>", *tok.tokens(tok.encode(middle))]  # no end token


@pytest.mark.parametrize("example", INFILL_EXAMPLES)
@pytest.mark.parametrize("name", T5S)
def test_t5_span_infilling_through_codemodel(load: Callable[[str], CodeModel], name: str, example: tuple[str, str, str]) -> None:
    # Span infilling is not healed: the sentinel follows the prefix exactly as in training, even
    # when the prefix ends in whitespace (every INFILL_EXAMPLES prefix does).
    prefix, middle, suffix = example
    stream = load(name).complete(prefix, suffix)
    assert (stream.read(), stream.finish_reason) == (middle, "end")


@pytest.mark.parametrize("code", SUMMARIES)
@pytest.mark.parametrize("name", T5S)
def test_t5_summarizes(load: Callable[[str], CodeModel], name: str, code: str) -> None:
    stream = load(name).summarize(code)
    assert stream.read() == SUMMARIES[code]
    assert stream.finish_reason == "end"


@pytest.mark.parametrize("name", ["llama_int8", "t5_float32"])
def test_close_mid_stream(load: Callable[[str], CodeModel], name: str) -> None:
    prefix = "def add(a, b):"
    stream = load(name).complete(prefix, max_new_tokens=100)
    first, second = next(stream), next(stream)
    tokens = stream.tokens
    stream.close()
    assert stream.finish_reason == "closed"
    assert list(stream) == [] and stream.read() == first + second
    assert stream.tokens == tokens  # no id was consumed after close
    with pytest.raises(StopIteration):
        next(stream)
    # The model is free again and gives the same text.
    assert load(name).complete(prefix, max_new_tokens=100).read() == CORPUS[len(prefix) :]


def test_close_before_start(load: Callable[[str], CodeModel]) -> None:
    with load("llama_int8").complete("def add(a, b):") as stream:
        pass
    assert (stream.finish_reason, list(stream), stream.tokens) == ("closed", [], 0)


@pytest.mark.parametrize("name", ["llama_int8", "codegen_int8", "t5_int8"])
def test_stop_predicate(load: Callable[[str], CodeModel], name: str) -> None:
    prefix = "def add(a, b):"
    seen: list[str] = []

    def stop(text: str) -> bool:
        seen.append(text)
        return "return" in text

    stream = load(name).complete(prefix, max_new_tokens=100, stop=stop)
    text = stream.read()
    assert stream.finish_reason == "stop"
    assert text == "\n    return" == seen[-1]  # stopped at the first piece that satisfied it


def test_t5_early_stop_ends_decoding(tiny_models: TinyModels, tok: CodeTokenizer) -> None:
    engine = EncoderDecoderEngine(tiny_models.t5_int8, tok, device="cpu", compute_type="auto", threads=1)
    source, prefix = tok.encode_with_specials("<unk>"), tok.encode("def add(a, b):")
    seen_lengths: list[int] = []

    def early(seen: list[int]) -> bool:
        seen_lengths.append(len(seen))
        return len(seen) >= 3

    ids = list(engine.continue_prefix(source, prefix, 100, END, early))
    # The first new id comes from the alternatives step, the callback sees the others.
    assert seen_lengths == [1, 2, 3]
    assert tok.decode(ids) == CORPUS[len("def add(a, b):") :][: len(tok.decode(ids))]
    assert len(ids) == 4


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("max_new_tokens", [1, 5])
def test_max_new_tokens(load: Callable[[str], CodeModel], name: str, max_new_tokens: int) -> None:
    prefix = "def add(a, b):"
    stream = load(name).complete(prefix, max_new_tokens=max_new_tokens)
    text = stream.read()
    # The prompt ends in a mark, so its last token is cut (limit_cut) and written again first: the
    # tokens that re-create it come on top of the budget.
    cut = limit_cut(heal_prefix(prefix), lambda t: load(name).tokenizer.encode_with_offsets(t)[1]).cut
    assert cut and max_new_tokens < stream.tokens <= max_new_tokens + len(load(name).tokenizer.encode(cut)) + 1
    assert stream.finish_reason == "end"
    assert text == CORPUS[len(prefix) :][: len(text)] and text


@pytest.mark.parametrize("name", DECODERS)
def test_max_new_tokens_with_healing(load: Callable[[str], CodeModel], tok: CodeTokenizer, name: str) -> None:
    prefix = "def add(a, b):\n    ret"
    stream = load(name).complete(prefix, max_new_tokens=3)
    text = stream.read()
    # The model writes the cut first, so its tokens come on top of the budget.
    assert stream.tokens <= 3 + len(tok.encode(heal_prefix(prefix).cut)) + 1
    assert text.startswith("urn") and continues_corpus(prefix, text)


def test_read_after_partial_iteration(load: Callable[[str], CodeModel]) -> None:
    stream = load("codegen_int8").complete("def add(a, b):", max_new_tokens=8)
    first = next(stream)
    assert stream.read().startswith(first) and stream.read() == stream.text
    assert stream.text == CORPUS[len("def add(a, b):") :][: len(stream.text)]


@pytest.mark.parametrize("name", ["llama_int8", "t5_int8"])
def test_no_healing_token_is_divergence(load: Callable[[str], CodeModel], name: str) -> None:
    stream = load(name).complete("def add(a, b):Q")  # no likely token after ":" agrees with "Q"
    assert stream.read() == ""
    assert (stream.finish_reason, stream.tokens) == ("diverged", 0)


def long_prefix(header: str, tail: str = "    def decrement(self):\n        self.count -= ") -> str:
    """A prompt with a static part (>= 20 lines) whose first line is `header`."""
    return f"# {header}\n" + CORPUS * 2 + tail


def test_complete_is_lazy(tiny_models: TinyModels, cache_env: None) -> None:
    model = CodeModel(tiny_models.llama_int8, device="cpu", cpu_threads=1)
    stream = model.complete(long_prefix("lazy"))  # healed: the first token needs a forward pass
    assert len(model._engine.static_cache) == 0  # nothing ran yet
    next(stream)
    assert len(model._engine.static_cache) == 1


@pytest.mark.parametrize("name", ["llama_int8", "llama_float32"])
def test_static_prompt_cache_bounded_and_reused(tiny_models: TinyModels, cache_env: None, name: str) -> None:
    model = CodeModel(getattr(tiny_models, name), device="cpu", cpu_threads=1, max_cached_prompts=2)
    cache = model._engine.static_cache
    now = [0.0]
    cache.clock = lambda: now[0]

    def run(prefix: str) -> str:
        return model.complete(prefix, max_new_tokens=8).read()

    first = run(long_prefix("a"))
    assert first
    assert (len(cache), cache.resets) == (1, 0)
    for typed in ("1", "1 ", "1 +", "1 + x"):  # typing on the last line reuses the entry
        run(long_prefix("a") + typed)
    assert (len(cache), cache.resets) == (1, 0)
    run(long_prefix("b"))
    assert (len(cache), cache.resets) == (2, 0)
    uncached = run(long_prefix("c"))  # a third prompt while both entries are in use: not cached
    assert (len(cache), cache.resets) == (2, 0)
    now[0] += cache.stale_after_s
    assert run(long_prefix("c")) == uncached  # the entries went stale: the model is reloaded, the cache emptied
    assert (len(cache), cache.resets) == (1, 1)
    assert model._engine.generator.model_is_loaded
    assert run(long_prefix("a")) == first  # same text after the reset
    assert (len(cache), cache.resets) == (2, 1)
    run("def add(a, b):")  # short prompts have no static part
    assert (len(cache), cache.resets) == (2, 1)


@pytest.mark.parametrize("name", DECODERS)
def test_static_prompt_gives_same_tokens(model_dirs: dict[str, Path], tok: CodeTokenizer, name: str) -> None:
    engine = DecoderEngine(
        model_dirs[name], tok, device="cpu", compute_type="auto", threads=1, max_cached_prompts=2
    )
    prompt = plain_prompt(tok, long_prefix("same", "    def increment(self):\n"), 2048, None)
    assert prompt.static_len > 20
    cached = [list(engine.stream(prompt.ids, prompt.static_len, 16, END)) for _ in range(2)]
    plain = list(engine.stream(prompt.ids, 0, 16, END))
    assert cached[0] == cached[1] == plain and len(plain) == 16
    candidates = engine.next_token_candidates(prompt.ids, prompt.static_len, 5)
    assert candidates == engine.next_token_candidates(prompt.ids, 0, 5) and candidates[0] == plain[0]
    assert len(engine.static_cache) == 1


@pytest.mark.parametrize("name", DECODERS)
def test_speculative_first_token(model_dirs: dict[str, Path], tok: CodeTokenizer, name: str) -> None:
    engine = DecoderEngine(model_dirs[name], tok, device="cpu", compute_type="auto", threads=1, max_cached_prompts=2)
    prompt = plain_prompt(tok, long_prefix("bet", "    def increment(self):\n"), 2048, None)
    plain = list(engine.stream(prompt.ids, prompt.static_len, 16, END))
    seen: list[int] = []
    accepted = list(engine.stream_checked(prompt.ids, prompt.static_len, 16, END, lambda t: seen.append(t) or True, 5))
    assert accepted == plain and seen == plain[:1]  # one pass: the check saw only the first token
    with pytest.raises(FirstTokenRejected) as refused:
        list(engine.stream_checked(prompt.ids, prompt.static_len, 16, END, lambda t: False, 5))
    assert refused.value.candidates == engine.next_token_candidates(prompt.ids, prompt.static_len, 5)
    assert refused.value.candidates[0] == plain[0]


def test_static_prompt_cache_resets_only_when_stale(tiny_models: TinyModels) -> None:
    generator = ctranslate2.Generator(str(tiny_models.llama_int8), device="cpu", intra_threads=1)
    now = [0.0]
    cache = StaticPromptCache(generator, 2, stale_after_s=2.0, clock=lambda: now[0])

    def admit(name: str, at: float) -> bool:
        now[0] = at
        return cache.admit(["<s>", name])

    assert admit("a", 0.0) and admit("b", 0.5) and admit("a", 1.0)
    assert (len(cache), cache.resets) == (2, 0)
    assert not admit("c", 2.0)  # "b" was used 1.5 s ago: "c" runs uncached
    assert (len(cache), cache.resets) == (2, 0)
    assert admit("c", 2.5)  # the least recently used entry ("b") is 2 s old: reload, then cache "c"
    assert (len(cache), cache.resets) == (1, 1) and generator.model_is_loaded
    assert admit("a", 2.6) and (len(cache), cache.resets) == (2, 1)  # a free entry needs no reload
    assert admit("c", 4.0)  # a hit refreshes "c": now "a" (2.6) is the least recently used
    assert not admit("b", 4.5) and admit("b", 4.7)
    assert (len(cache), cache.resets) == (1, 2)


def test_summarize_needs_encoder_decoder(load: Callable[[str], CodeModel]) -> None:
    model = load("llama_int8")
    assert model.can_complete and not model.can_summarize
    with pytest.raises(CapabilityError, match="does not summarize"):
        model.summarize("def add(a, b):\n    return a + b")


def test_summarize_only_preset_does_not_complete(tiny_models: TinyModels, cache_env: None, tmp_path: Path) -> None:
    # A local directory named after a summarize-only preset gets that preset's capabilities.
    model_dir = tmp_path / "codet5-base-multi-sum"
    shutil.copytree(tiny_models.t5_int8, model_dir)
    model = CodeModel(model_dir, device="cpu", cpu_threads=1)
    assert model.preset.name == "codet5-base-multi-sum"
    assert model.can_summarize and not model.can_complete
    with pytest.raises(CapabilityError, match="does not complete"):
        model.complete("def add(a, b):")
    code, summary = next(iter(SUMMARIES.items()))
    assert model.summarize(code).read() == summary


def test_prompt_fits_model_context(tiny_models: TinyModels, cache_env: None, tmp_path: Path) -> None:
    hf_dir = tiny_gpt2(tiny_models.tokenizer_dir, tmp_path / "gpt2", n_positions=64)
    model = CodeModel(convert_to_ct2(hf_dir, tmp_path / "gpt2-ct2"), device="cpu", cpu_threads=1)
    prefix = CORPUS * 2 + "def add(a, b):"
    assert model.count_tokens(prefix) > 64
    assert model.preset.max_context_tokens == 64
    model.complete(prefix, max_new_tokens=8).read()  # no "No position encodings ... >= 64" from CTranslate2


def test_count_tokens(load: Callable[[str], CodeModel], tok: CodeTokenizer) -> None:
    assert load("llama_int8").count_tokens(CORPUS) == len(tok.encode(CORPUS)) > 50
    assert load("t5_int8").count_tokens("") == 0


def test_pick_device() -> None:
    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda") == "cuda"
    assert pick_device("auto") == ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        pick_device("gpu")


def test_pick_compute_type() -> None:
    assert pick_compute_type("auto", "cpu") == "int8"
    assert pick_compute_type("auto", "cuda") == "int8_float16"
    assert pick_compute_type("float32", "cpu") == "float32"
    with pytest.raises(ValueError, match="not supported on cpu") as error:
        pick_compute_type("no_such_type", "cpu")
    assert "int8" in str(error.value)  # lists what is supported


def test_invalid_device_fails_before_loading(cache_env: None) -> None:
    with pytest.raises(ValueError, match="device must be"):
        CodeModel("/no/such/model", device="tpu")


@pytest.mark.parametrize("compute_type", ["float32", "int8_float32"])
def test_compute_type_override(tiny_models: TinyModels, cache_env: None, compute_type: str) -> None:
    model = CodeModel(tiny_models.llama_int8, device="cpu", compute_type=compute_type, cpu_threads=1)
    assert model.compute_type == compute_type
    assert model.complete("def add(a, b):", max_new_tokens=200).read() == CORPUS[len("def add(a, b):") :]


# --- transformers backend: the same interface and greedy output as CTranslate2 float32 ---


HFEngines = tuple[TransformersDecoderEngine, TransformersEncoderDecoderEngine]
CT2Engines = tuple[DecoderEngine, EncoderDecoderEngine]


@pytest.fixture(scope="module")
def hf_engines(tiny_models: TinyModels) -> Iterator[HFEngines]:
    threads = torch.get_num_threads()
    try:
        yield (
            TransformersDecoderEngine(tiny_models.llama_hf, device="cpu", threads=1),
            TransformersEncoderDecoderEngine(tiny_models.t5_hf, device="cpu", threads=1),
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ct2_engines(tiny_models: TinyModels, tok: CodeTokenizer) -> CT2Engines:
    return (
        DecoderEngine(
            tiny_models.llama_float32, tok, device="cpu", compute_type="float32", threads=1, max_cached_prompts=2
        ),
        EncoderDecoderEngine(tiny_models.t5_float32, tok, device="cpu", compute_type="float32", threads=1),
    )


@pytest.mark.parametrize("prefix", [*CLEAN_PREFIXES[:2], CORPUS[: CORPUS.index(' return "Hello')]])
def test_transformers_decoder_matches_ct2(
    hf_engines: HFEngines, ct2_engines: CT2Engines, tok: CodeTokenizer, prefix: str
) -> None:
    prompt = plain_prompt(tok, prefix, 2048, None)
    hf, ct2 = hf_engines[0], ct2_engines[0]
    expected = list(ct2.stream(prompt.ids, 0, 200, END))
    got = list(hf.stream(prompt.ids, 0, 200, END))
    assert got == expected
    assert tok.decode(got) == CORPUS[len(prefix) :]
    assert hf.next_token_candidates(prompt.ids, 0, 3) == ct2.next_token_candidates(prompt.ids, 0, 3)
    assert list(hf.stream(prompt.ids, 0, 4, END)) == got[:4]


@pytest.mark.parametrize("code", SUMMARIES)
def test_transformers_summary_matches_ct2(
    hf_engines: HFEngines, ct2_engines: CT2Engines, tok: CodeTokenizer, code: str
) -> None:
    source = tok.encode_with_specials(code)
    got = list(hf_engines[1].stream(source, 48, END))
    assert got == list(ct2_engines[1].stream(source, 48, END))
    assert tok.decode(got) == SUMMARIES[code]


def test_transformers_span_matches_ct2(hf_engines: HFEngines, ct2_engines: CT2Engines, tok: CodeTokenizer) -> None:
    prefix, middle, suffix = INFILL_EXAMPLES[1]
    source = codet5_span_prompt(tok, prefix, suffix, 512).source_ids
    ends = [*END, "<extra_id_1>"]
    got = list(hf_engines[1].stream(source, 32, ends))
    assert got == list(ct2_engines[1].stream(source, 32, ends))
    assert tok.decode(got) == middle


@pytest.mark.parametrize("prefix", CLEAN_PREFIXES[1:3])
def test_transformers_continue_prefix_matches_ct2(
    hf_engines: HFEngines, ct2_engines: CT2Engines, tok: CodeTokenizer, prefix: str
) -> None:
    source, prefix_ids = tok.encode_with_specials("<unk>"), tok.encode(prefix)
    hf, ct2 = hf_engines[1], ct2_engines[1]
    got = list(hf.continue_prefix(source, prefix_ids, 200, END))
    assert got == list(ct2.continue_prefix(source, prefix_ids, 200, END))
    assert tok.decode(got) == CORPUS[len(prefix) :]
    assert hf.next_token_candidates(source, prefix_ids, 3) == ct2.next_token_candidates(source, prefix_ids, 3)
    assert hf.next_token_candidates(source, prefix_ids, 1) == got[:1]
    # Unlike CTranslate2's alternatives step, every new id reaches early_stop here.
    assert len(list(hf.continue_prefix(source, prefix_ids, 200, END, lambda seen: len(seen) >= 3))) == 3


@pytest.mark.parametrize("engine", ["decoder", "encoder-decoder"])
def test_ct2_streams_yield_no_end_token(ct2_engines: CT2Engines, tok: CodeTokenizer, engine: str) -> None:
    if engine == "decoder":
        ids = list(ct2_engines[0].stream(plain_prompt(tok, "def add(a, b):", 2048, None).ids, 0, 200, END))
    else:
        ids = list(ct2_engines[1].stream(tok.encode_with_specials(next(iter(SUMMARIES))), 48, END))
    assert ids and not set(tok.tokens(ids)) & set(END)
