"""The summarizer recipe on a tiny random Qwen2-shaped decoder (q/k/v biases, rope base 1e6, tied
embeddings) read from a GGUF: the shape comes from the file, the untrained model is the decoder,
a short training run learns to read the code, and the assembled CTranslate2 encoder-decoder
computes what the training model does."""

from __future__ import annotations

import json
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from tokenizers import Tokenizer

from inference import CodeModel
from inference.models.convert import convert_gguf_to_ct2
from inference.summarizer_assembly import (
    END_TOKEN,
    START_TOKEN,
    SUMMARIZER_PRESET,
    SUMMARY_PREFIX,
    assemble_summarizer,
    read_checkpoint,
)
from quantize.summarizer.data import write_jsonl
from quantize.summarizer.extract import Pair
from quantize.summarizer.seq2seq import DecoderSeq2Seq, Seq2SeqShape
from quantize.summarizer.training import TrainConfig, batch_loss, encode, load_model, save_delta, train
from tests.tiny_gguf import MIXED_TYPES, DecoderShape, train_bpe_tokenizer, write_random_gguf
from tests.tiny_models import trained_looking

QWEN = DecoderShape(layers=4)
PRESET = "qwen2.5-coder-0.5b-summarizer"  # a name recorded in the assembled model (no such preset is shipped)
CODE = "def add(a, b):\n    return a + b\n"
WORDS = ("name", "path", "value", "items", "size", "key", "data", "text", "line", "count", "mode", "result")


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> Path:
    """Matrices in Q8_0 / F16 (normal random values; random K-quant blocks make a residual stream so
    large that a short run cannot teach the cross-attention to move it)."""
    types = {kind: (Q.Q8_0, Q.F16) for kind in MIXED_TYPES}
    return write_random_gguf(tmp_path_factory.mktemp("qwen") / "qwen2.gguf", train_bpe_tokenizer(), QWEN, types=types)


def _model(gguf: Path, **added: int) -> DecoderSeq2Seq:
    checkpoint = read_checkpoint(gguf)
    return DecoderSeq2Seq.from_decoder(checkpoint.weights, Seq2SeqShape.from_config(checkpoint.config, **added)).eval()


def _tokenizer(gguf: Path, directory: Path) -> Tokenizer:
    directory.mkdir()
    read_checkpoint(gguf).save_tokenizer(directory)
    return Tokenizer.from_file(str(directory / "tokenizer.json"))


def test_shape_is_read_from_the_gguf(gguf: Path) -> None:
    shape = Seq2SeqShape.from_config(read_checkpoint(gguf).config, encoder_layers=1, cross_every=1, cross_start=2)
    assert (shape.hidden, shape.decoder_layers, shape.heads, shape.kv_heads, shape.head_dim) == (256, 4, 4, 2, 64)
    assert (shape.intermediate, shape.rope_base, shape.norm_eps, shape.qkv_bias) == (512, 1e6, pytest.approx(1e-6), True)
    assert shape.cross_layers == (2, 3)
    model = DecoderSeq2Seq(shape)
    assert [hasattr(layer, "cross_attn") for layer in model.decoder] == [False, False, True, True]
    assert model.decoder[0].self_attn.q_proj.bias is not None and model.decoder[2].cross_attn.q_proj.bias is None


def test_untrained_decoder_is_the_language_model(gguf: Path, tmp_path: Path) -> None:
    """Compared with the decoder-only CTranslate2 conversion of the same GGUF (float32)."""
    model = _model(gguf, encoder_layers=1, cross_every=1, cross_start=2)
    ids = [5, 40, 77, 300, 12, 9]
    generator = ctranslate2.Generator(str(convert_gguf_to_ct2(gguf, tmp_path / "lm", "float32")), intra_threads=1)
    expected = np.asarray(generator.forward_batch([ids]))[0]
    source = torch.tensor([[7, 8, 9]])
    with torch.no_grad():
        memory, mask = model.encode(source, torch.ones_like(source, dtype=torch.bool))
        logits = model.decode(torch.tensor([ids]), memory, mask)[0]
    assert np.allclose(logits.numpy(), expected, atol=2e-3)


def test_layers_below_the_cross_attention_get_no_gradients(gguf: Path) -> None:
    model = _model(gguf, encoder_layers=1, cross_every=1, cross_start=2)
    for parameter in model.parameters():
        parameter.requires_grad_(True)  # even unfrozen, the lower layers are run without gradients
    loss = batch_loss(model, [([5, 6, 7], [8, 9, 1])], start=[3], pad_id=0)
    loss.backward()
    assert all(p.grad is None for p in model.decoder[:2].parameters())
    assert all(p.grad is not None for p in model.decoder[2].parameters())
    assert model.encoder[0].self_attn.q_proj.weight.grad is not None


def test_frozen_encoder_feed_forward_is_not_trained_nor_shipped(gguf: Path, tmp_path: Path) -> None:
    model = _model(gguf, encoder_layers=2, cross_every=2, encoder_mlp_trained=False)
    names = model.trainable_names()
    assert not any(".mlp." in n for n in names) and any(n.startswith("encoder.1.self_attn.") for n in names)
    delta = save_delta(trained_looking(model), tmp_path / "delta", {})
    out = assemble_summarizer(gguf, delta, tmp_path / "ct2", "float32")  # the encoder's MLPs come from the decoder
    assert (out / "model.bin").is_file()


def _pairs(count: int) -> list[Pair]:
    """Functions whose summary names what the code returns: only the code tells which word it is."""
    return [Pair(code=f"return {WORDS[i % len(WORDS)]}\n",
                 summary=f"Return the {WORDS[i % len(WORDS)]}.", name="get", module=f"m{i}") for i in range(count)]


def test_training_lowers_the_loss_and_uses_the_code(gguf: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.jsonl", _pairs(96))
    write_jsonl(data / "valid.jsonl", _pairs(12))
    config = TrainConfig(encoder_layers=1, cross_every=1, cross_start=2, batch_size=8, steps=120, warmup_steps=5,
                         threads=1, valid_every_minutes=100, valid_loss_examples=12, valid_bleu_examples=0)
    delta = train(gguf, data, tmp_path / "out", config, log=lambda _: None)
    log = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 120 and log[-1]["valid_loss"] < log[0]["valid_loss"] - 1.0
    from safetensors.torch import load_file

    model = load_model(gguf, config, tmp_path / "tokenizer")
    model.load_state_dict(load_file(str(delta)), strict=False)
    model.eval()
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer" / "tokenizer.json"))
    start = [tokenizer.token_to_id(START_TOKEN), *tokenizer.encode(SUMMARY_PREFIX, add_special_tokens=False).ids]
    examples = [encode(tokenizer, p, config) for p in _pairs(12)]
    swapped = [(examples[(i + 1) % 12][0], target) for i, (_, target) in enumerate(examples)]
    end = tokenizer.token_to_id(END_TOKEN)
    with torch.no_grad():
        right, wrong = float(batch_loss(model, examples, start, end)), float(batch_loss(model, swapped, start, end))
    assert wrong > right + 0.5, (right, wrong)
    _ship(tmp_path, gguf)


def _ship(work: Path, gguf: Path) -> None:
    """The shipped delta (int8 rows) assembles, and the card names the decoder and the layout."""
    from quantize.summarizer.ship import ship

    manifest = {"seed": 1, "sources": [{"name": "python-stdlib", "version": "3", "licence": "PSF-2.0", "files": 1,
                                        "pairs": 96, "pairs_after_dedup": 96}], "excluded_distributions": [],
                "pairs_before_dedup": 108, "pairs": {"train": 96, "valid": 12, "test": 0},
                "modules": {"train": 96, "valid": 12, "test": 0}}
    (work / "data" / "manifest.json").write_text(json.dumps(manifest))
    (work / "command.txt").write_text("python -m quantize.summarizer train --decoder qwen2.5-coder-0.5b\n")
    out = ship(work / "out", work, "qwen2.5-coder-0.5b", work / "shipped")
    card = (out / "MODEL_CARD.md").read_text()
    assert "on Qwen2.5-Coder-0.5B-Instruct" in card and "block in layers 3, 2;" in card
    assert "Layers 0-1 never see the encoder" in card and "q/k/v biases" in card
    assert (assemble_summarizer(gguf, out / "delta.safetensors", work / "ct2", "int8") / "model.bin").is_file()


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_assembled_ct2_model_computes_what_the_training_model_does(gguf: Path, tmp_path: Path, quantization: str) -> None:
    model = trained_looking(_model(gguf, encoder_layers=2, cross_every=1, cross_start=1))
    delta = save_delta(model, tmp_path / "delta", {})
    out = assemble_summarizer(gguf, delta, tmp_path / "ct2", quantization, preset=PRESET)
    assert json.loads((out / "codet5_lsp.json").read_text())["preset"] == PRESET
    tokenizer = _tokenizer(gguf, tmp_path / "tok")
    source = tokenizer.encode(CODE, add_special_tokens=False).ids
    start, end = tokenizer.token_to_id(START_TOKEN), tokenizer.token_to_id(END_TOKEN)
    expected = model.greedy(source, [start], end, max_new=12)
    translator = ctranslate2.Translator(str(out), compute_type=quantization, intra_threads=1)
    tokens = [[tokenizer.id_to_token(i) for i in source]]
    hypothesis = translator.translate_batch(tokens, beam_size=1, max_decoding_length=12, end_token=END_TOKEN)[0].hypotheses[0]
    got = [tokenizer.token_to_id(t) for t in hypothesis]
    target = expected[:6]
    scored = translator.score_batch(tokens, [[tokenizer.id_to_token(i) for i in target]])[0].log_probs[: len(target)]
    with torch.no_grad():
        src = torch.tensor([source])
        logits = model(src, torch.ones_like(src, dtype=torch.bool), torch.tensor([[start, *target[:-1]]]))
    reference = torch.log_softmax(logits[0], -1)[torch.arange(len(target)), torch.tensor(target)]
    if quantization == "float32":
        assert got == expected and len(got) >= 3
        assert torch.allclose(torch.tensor(scored), reference, atol=1e-3)
    else:  # the random decoder's next-token distributions are flat: int8 may change the argmax, not the scores
        assert torch.allclose(torch.tensor(scored), reference, atol=0.15)


def test_assembled_model_summarizes_through_codemodel(gguf: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CODET5_LSP_CACHE", str(tmp_path / "cache"))
    model = trained_looking(_model(gguf, encoder_layers=1, cross_every=2))
    delta = save_delta(model, tmp_path / "delta", {}, summary_prefix=SUMMARY_PREFIX)
    loaded = CodeModel(str(assemble_summarizer(gguf, delta, tmp_path / "ct2", "float32")),
                       cpu_threads=1, compute_type="float32")
    assert loaded.preset.name == SUMMARIZER_PRESET and loaded.can_summarize and not loaded.can_complete
    tokenizer = _tokenizer(gguf, tmp_path / "tok")
    start = [tokenizer.token_to_id(START_TOKEN), *tokenizer.encode(SUMMARY_PREFIX, add_special_tokens=False).ids]
    expected = model.greedy(tokenizer.encode(CODE, add_special_tokens=False).ids, start, tokenizer.token_to_id(END_TOKEN), 8)
    assert loaded.summarize(CODE, max_new_tokens=8).read() == tokenizer.decode(expected) and len(expected) > 2
