"""The SmolLM2-initialized summarizer recipe on the tiny Llama: the training model, a short
training run, and its assembly into one CTranslate2 encoder-decoder that computes the same thing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import ctranslate2
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

from inference import CodeModel
from inference.summarizer_assembly import SUMMARIZER_PRESET, SUMMARY_PREFIX, assemble_summarizer, read_checkpoint
from quantize.summarizer.data import write_jsonl
from quantize.summarizer.extract import Pair
from quantize.summarizer.seq2seq import DecoderSeq2Seq, Seq2SeqShape
from quantize.summarizer.training import TrainConfig, collate, save_delta, train
from tests.tiny_models import CORPUS, TinyModels, trained_looking

START, END = "<s>", "</s>"
CODE = "def add(a, b):\n    return a + b\n"


def _models(tiny_models: TinyModels) -> tuple[torch.nn.Module, DecoderSeq2Seq]:
    lm = AutoModelForCausalLM.from_pretrained(str(tiny_models.llama_hf), dtype=torch.float32).eval()
    checkpoint = read_checkpoint(tiny_models.llama_hf)
    shape = Seq2SeqShape.from_config(checkpoint.config, encoder_layers=1, cross_every=1)
    return lm, DecoderSeq2Seq.from_decoder(checkpoint.weights, shape).eval()


def test_untrained_decoder_is_the_language_model(tiny_models: TinyModels) -> None:
    lm, model = _models(tiny_models)
    ids = torch.tensor([[3, 10, 20, 30, 40, 50]])
    source = torch.tensor([[7, 8, 9]])
    with torch.no_grad():
        memory, mask = model.encode(source, torch.ones_like(source, dtype=torch.bool))
        assert torch.allclose(model.decode(ids, memory, mask), lm(ids).logits, atol=1e-5)


def test_only_the_encoder_and_cross_attention_train(tiny_models: TinyModels) -> None:
    _, model = _models(tiny_models)
    model.freeze_decoder()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained == set(model.trainable_names())
    assert all(n.startswith("encoder") or ".cross_" in n for n in trained)
    assert any(".cross_attn." in n for n in trained) and any(n.startswith("encoder.") for n in trained)


def test_collate_shifts_targets_and_masks_padding() -> None:
    source, mask, target_in, labels = collate([([5, 6, 7], [8, 1]), ([5], [9, 10, 1])], start=[3], pad_id=0)
    assert source.tolist() == [[5, 6, 7], [5, 0, 0]] and mask.tolist() == [[True] * 3, [True, False, False]]
    assert target_in.tolist() == [[3, 8, 0], [3, 9, 10]]
    assert labels.tolist() == [[8, 1, -100], [9, 10, 1]]
    _, _, target_in, labels = collate([([5], [8, 1])], start=[3, 42, 43], pad_id=0)  # a forced prefix is not predicted
    assert target_in.tolist() == [[3, 42, 43, 8]] and labels.tolist() == [[-100, -100, 8, 1]]


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_assembled_ct2_model_computes_what_the_training_model_does(
    tiny_models: TinyModels, tmp_path: Path, quantization: str
) -> None:
    _, model = _models(tiny_models)
    model = trained_looking(model)
    delta = save_delta(model, tmp_path / "delta", {}, START, END)
    out = assemble_summarizer(tiny_models.llama_hf, delta, tmp_path / "ct2", quantization)
    assert json.loads((out / "codet5_lsp.json").read_text())["preset"] == SUMMARIZER_PRESET
    tokenizer = Tokenizer.from_file(str(tiny_models.llama_hf / "tokenizer.json"))
    source = tokenizer.encode(CODE, add_special_tokens=False).ids
    start, end = tokenizer.token_to_id(START), tokenizer.token_to_id(END)
    expected = model.greedy(source, [start], end, max_new=12)
    translator = ctranslate2.Translator(str(out), compute_type=quantization, intra_threads=1)
    hypothesis = translator.translate_batch([[tokenizer.id_to_token(i) for i in source]], beam_size=1,
                                            max_decoding_length=12, end_token=END)[0].hypotheses[0]
    got = [tokenizer.token_to_id(t) for t in hypothesis]
    if quantization == "float32":
        assert got == expected and len(got) >= 3
        target = expected[:5]
        scored = translator.score_batch([[tokenizer.id_to_token(i) for i in source]],
                                        [[tokenizer.id_to_token(i) for i in target]])[0].log_probs[: len(target)]
        with torch.no_grad():
            src = torch.tensor([source])
            logits = model(src, torch.ones_like(src, dtype=torch.bool), torch.tensor([[start, *target[:-1]]]))
        reference = torch.log_softmax(logits[0], -1)[torch.arange(len(target)), torch.tensor(target)]
        assert torch.allclose(torch.tensor(scored), reference, atol=1e-3)
    else:
        assert got[:2] == expected[:2]


def test_assembled_model_summarizes_through_codemodel(tiny_models: TinyModels, tmp_path: Path, monkeypatch) -> None:
    """CodeModel forces the recorded summary prefix, then writes what the training model writes."""
    monkeypatch.setenv("CODET5_LSP_CACHE", str(tmp_path / "cache"))
    _, model = _models(tiny_models)
    model = trained_looking(model)
    delta = save_delta(model, tmp_path / "delta", {}, START, END, SUMMARY_PREFIX)
    out = assemble_summarizer(tiny_models.llama_hf, delta, tmp_path / "ct2", "float32")
    loaded = CodeModel(str(out), cpu_threads=1, compute_type="float32")
    assert loaded.preset.name == SUMMARIZER_PRESET
    assert loaded.can_summarize and not loaded.can_complete
    tokenizer = Tokenizer.from_file(str(tiny_models.llama_hf / "tokenizer.json"))
    start = [tokenizer.token_to_id(START), *tokenizer.encode(SUMMARY_PREFIX, add_special_tokens=False).ids]
    expected = model.greedy(tokenizer.encode(CODE, add_special_tokens=False).ids, start, tokenizer.token_to_id(END), 8)
    stream = loaded.summarize(CODE, max_new_tokens=8)
    assert stream.read() == tokenizer.decode(expected) and len(expected) > 2


def test_short_training_run_lowers_the_loss_and_writes_the_delta(tiny_models: TinyModels, tmp_path: Path) -> None:
    functions = [c for c in CORPUS.split("\n\n\n") if c.startswith("def ")]
    pairs = [Pair(code=code, summary=f"Function number {i} of the corpus.", name=f"f{i}", module="m")
             for i, code in enumerate(functions * 4)]
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.jsonl", pairs)
    write_jsonl(data / "valid.jsonl", pairs[:6])
    config = TrainConfig(encoder_layers=1, cross_every=1, batch_size=4, steps=40, warmup_steps=4, threads=1,
                             valid_every_minutes=100, valid_loss_examples=4, valid_bleu_examples=2,
                             start_token=START, end_token=END)
    delta = train(tiny_models.llama_hf, data, tmp_path / "out", config, log=lambda _: None)
    log = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert delta.is_file() and log[-1]["step"] == 40
    assert log[-1]["valid_loss"] < log[0]["valid_loss"] - 0.5
    # Continuing from the delta starts where the first run ended.
    again = replace(config, steps=1, init_delta=str(delta))
    train(tiny_models.llama_hf, data, tmp_path / "again", again, log=lambda _: None)
    first = json.loads((tmp_path / "again" / "train_log.jsonl").read_text().splitlines()[0])
    assert first["valid_loss"] == pytest.approx(log[-1]["valid_loss"], abs=1e-4)


def test_packed_delta_assembles_the_same_int8_model(tiny_models: TinyModels, tmp_path: Path) -> None:
    from quantize.summarizer.ship import pack_delta

    _, model = _models(tiny_models)
    delta = save_delta(trained_looking(model), tmp_path / "delta", {}, START, END)
    packed = tmp_path / "packed.safetensors"
    pack_delta(delta, packed)
    assert packed.stat().st_size < 0.4 * delta.stat().st_size
    tokenizer = Tokenizer.from_file(str(tiny_models.llama_hf / "tokenizer.json"))
    source = [[tokenizer.id_to_token(i) for i in tokenizer.encode(CODE, add_special_tokens=False).ids]]
    outputs = []
    for name, path in (("plain", delta), ("packed", packed)):
        out = assemble_summarizer(tiny_models.llama_hf, path, tmp_path / name, "int8")
        translator = ctranslate2.Translator(str(out), intra_threads=1)
        outputs.append(translator.score_batch(source, [source[0][:6]])[0].log_probs)
    assert outputs[0] == pytest.approx(outputs[1], abs=1e-4)
