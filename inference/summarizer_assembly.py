"""Assemble the embedded summarizer: the completion model's weights plus the shipped trained delta,
written as one CTranslate2 encoder-decoder (`TransformerSpec`).

The delta (`inference/data/summarizer/delta.safetensors` on SmolLM2-135M; made by `python -m quantize.summarizer train` and `ship`) holds a shallow
encoder and cross-attention blocks for some decoder layers; the embeddings, the decoder layers and
the output projection come from the completion model's checkpoint: the embedded GGUF itself
(dequantized with numpy, inference/models/gguf_ct2.py) or a Hugging Face directory. The sizes are the
delta's recorded shape (`quantize.summarizer.seq2seq.Seq2SeqShape`).
Decoder layers without a trained cross-attention block get one whose output projection is zero,
so it adds nothing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .models.cache import atomic_directory, building
from .models.convert import FORMAT_VERSION, TOKENIZER_FILES, disk_full_hint, write_metadata

SUMMARIZER_PRESET = "smollm2-135m-summarizer"
# SmolLM2's: the decoder starts after a document boundary and ends with the tokenizer's EOS.
START_TOKEN = "<|endoftext|>"
END_TOKEN = "<|im_end|>"
# Text forced after the start token, so the first word is read from a position that is not the
# language model's attention sink: position 0's hidden state carries a few huge values, and with
# int8 activations (quantized per row) nothing else of it survived, so every summary began with a
# garbage word (" affili", " strugg"). After `"""` the decoder writes a docstring's first sentence.
SUMMARY_PREFIX = '"""'


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def _dequantized(delta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float32 weights from a delta that stores int8 rows with a `<name>.scale` per row (or plain floats)."""
    out = {}
    for name, value in delta.items():
        if name.endswith(".scale"):
            continue
        scale = delta.get(f"{name}.scale")
        out[name] = value.astype(np.float32) * scale[:, None] if scale is not None else value.astype(np.float32)
    return out


@dataclass(frozen=True)
class Checkpoint:
    """The completion model's float32 weights (the training model's names), config and tokenizer."""

    weights: dict[str, np.ndarray]
    config: dict[str, Any]
    vocabulary: list[str]
    save_tokenizer: Callable[[Path], None]


def _training_names(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """transformers' names -> the training model's (`model.layers.3.` -> `decoder.3.`)."""
    renamed = {k.removeprefix("model."): v.astype(np.float32, copy=False) for k, v in tensors.items()}
    return {("decoder." + k[len("layers."):] if k.startswith("layers.") else k): v for k, v in renamed.items()}


def _hf_checkpoint(hf_dir: Path) -> Checkpoint:
    from tokenizers import Tokenizer

    tensors: dict[str, np.ndarray] = {}
    for file in sorted(hf_dir.glob("*.safetensors")):
        tensors.update(_read_safetensors(file)[0])
    tokenizer = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))

    def save_tokenizer(dest: Path) -> None:
        for name in TOKENIZER_FILES:
            if (hf_dir / name).is_file():
                shutil.copy2(hf_dir / name, dest / name)

    return Checkpoint(
        _training_names(tensors), json.loads((hf_dir / "config.json").read_text(encoding="utf-8")),
        [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size(with_added_tokens=True))], save_tokenizer,
    )


def _gguf_checkpoint(gguf_path: Path) -> Checkpoint:
    from .models.gguf_ct2 import GGUFModel, hf_weights, read_tokenizer

    model = GGUFModel(gguf_path)
    tokenizer = read_tokenizer(model)
    weights, config = hf_weights(model)
    return Checkpoint(_training_names(weights), config, tokenizer.vocabulary, tokenizer.save)


def read_checkpoint(source: Path) -> Checkpoint:
    """The completion model from a GGUF file (llama, qwen2; numpy only) or a Hugging Face directory."""
    source = Path(source)
    return _gguf_checkpoint(source) if source.is_file() else _hf_checkpoint(source)


def _attention(spec: Any, weights: dict[str, np.ndarray], prefix: str, norm: np.ndarray, cross: bool) -> None:
    """Self-attention: fused q/k/v (with their biases where the decoder has them, as Qwen2), output;
    cross-attention: q, fused k/v, output (no biases)."""
    q, k, v, o = (weights[f"{prefix}.{name}_proj.weight"] for name in "qkvo")
    spec.layer_norm.gamma = norm
    if cross:
        spec.linear[0].weight, spec.linear[1].weight = q, np.concatenate([k, v])
        spec.linear[2].weight = o
        return
    spec.linear[0].weight, spec.linear[1].weight = np.concatenate([q, k, v]), o
    if f"{prefix}.q_proj.bias" in weights:
        spec.linear[0].bias = np.concatenate([weights[f"{prefix}.{name}_proj.bias"] for name in "qkv"])


def _block(spec: Any, weights: dict[str, np.ndarray], prefix: str) -> None:
    _attention(spec.self_attention, weights, f"{prefix}.self_attn", weights[f"{prefix}.input_layernorm.weight"], False)
    spec.ffn.layer_norm.gamma = weights[f"{prefix}.post_attention_layernorm.weight"]
    spec.ffn.linear_0.weight = weights[f"{prefix}.mlp.gate_proj.weight"]
    spec.ffn.linear_0_noact.weight = weights[f"{prefix}.mlp.up_proj.weight"]
    spec.ffn.linear_1.weight = weights[f"{prefix}.mlp.down_proj.weight"]


def _zero_cross(spec: Any, hidden: int, kv: int) -> None:
    spec.layer_norm.gamma = np.ones(hidden, np.float32)
    spec.linear[0].weight = np.zeros((hidden, hidden), np.float32)
    spec.linear[1].weight = np.zeros((2 * kv, hidden), np.float32)
    spec.linear[2].weight = np.zeros((hidden, hidden), np.float32)


def build_spec(checkpoint: Checkpoint, delta: dict[str, np.ndarray], metadata: dict[str, str]) -> Any:
    """The CTranslate2 `TransformerSpec` of the completion checkpoint plus the delta (its tensors and
    its safetensors metadata)."""
    from ctranslate2.specs import common_spec, transformer_spec

    config = checkpoint.config
    shape = json.loads(metadata["shape"])
    weights = {**checkpoint.weights, **_dequantized(delta)}
    for i in range(shape["encoder_layers"]):  # an encoder tensor the delta lacks stayed the decoder layer's
        for name in [n for n in checkpoint.weights if n.startswith(f"decoder.{i}.")]:
            weights.setdefault(f"encoder.{i}." + name.removeprefix(f"decoder.{i}."), checkpoint.weights[name])
    if config["hidden_size"] != shape["hidden"] or config["num_hidden_layers"] != shape["decoder_layers"]:
        raise ValueError("the delta was trained for another model than the completion checkpoint given")
    common = dict(
        num_heads=shape["heads"], pre_norm=True, activation=common_spec.Activation.SWISH, ffn_glu=True, rms_norm=True,
        num_heads_kv=shape["kv_heads"], rotary_dim=0, rotary_interleave=False, rotary_base=shape["rope_base"],
    )
    encoder = transformer_spec.TransformerEncoderSpec(shape["encoder_layers"], **common)
    decoder = transformer_spec.TransformerDecoderSpec(shape["decoder_layers"], with_encoder_attention=True, **common)
    embeddings = weights["embed_tokens.weight"]
    encoder.embeddings[0].weight = embeddings
    encoder.scale_embeddings = False
    del encoder.position_encodings  # rotary embeddings in every layer instead
    for i, layer in enumerate(encoder.layer):
        _block(layer, weights, f"encoder.{i}")
    encoder.layer_norm.gamma = weights["encoder_norm.weight"]
    decoder.embeddings.weight = embeddings
    decoder.scale_embeddings = False
    decoder.projection.weight = weights.get("lm_head.weight", embeddings)
    decoder.layer_norm.gamma = weights["norm.weight"]
    kv = shape["kv_heads"] * shape["head_dim"]
    for i, layer in enumerate(decoder.layer):
        _block(layer, weights, f"decoder.{i}")
        if f"decoder.{i}.cross_attn.q_proj.weight" in weights:
            _attention(layer.attention, weights, f"decoder.{i}.cross_attn", weights[f"decoder.{i}.cross_layernorm.weight"], True)
        else:
            _zero_cross(layer.attention, shape["hidden"], kv)
    spec = transformer_spec.TransformerSpec(encoder, decoder)
    start, end = metadata.get("start_token", START_TOKEN), metadata.get("end_token", END_TOKEN)
    spec.config.decoder_start_token = spec.config.bos_token = spec.config.unk_token = start
    spec.config.eos_token = end
    spec.config.layer_norm_epsilon = shape["norm_eps"]
    spec.register_source_vocabulary(checkpoint.vocabulary)
    spec.register_target_vocabulary(checkpoint.vocabulary)
    return spec


def assemble_summarizer(source: Path, delta_path: Path, out: Path, quantization: str = "int8", *,
                        preset: str = SUMMARIZER_PRESET, source_label: str = "",
                        metadata: dict[str, Any] | None = None) -> Path:
    """Write the summarizer as a CTranslate2 directory at `out` (atomically), with the tokenizer.

    `source` is the completion model: a GGUF file (llama; read with numpy, no torch) or a Hugging
    Face directory. A full disk raises CacheWriteError.
    """
    delta, delta_metadata = _read_safetensors(delta_path)
    with building(out), disk_full_hint(out):
        checkpoint = read_checkpoint(source)
        spec = build_spec(checkpoint, delta, delta_metadata)
        with atomic_directory(out) as tmp:
            spec.validate()
            spec.optimize(quantization=quantization)
            spec.save(str(tmp))
            checkpoint.save_tokenizer(tmp)
            write_metadata(tmp, {"format_version": FORMAT_VERSION, "preset": preset,
                                 "quantization": quantization, "source": source_label or f"{source} + {delta_path}",
                                 "summary_prefix": delta_metadata.get("summary_prefix", ""), **(metadata or {})})
    return out
