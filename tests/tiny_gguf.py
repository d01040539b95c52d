"""A GGUF file of the tiny Llama, written offline for tests that run llama.cpp.

A small converter for this one shape (Llama, byte-level BPE tokenizer, float32 weights),
following llama.cpp's `convert_hf_to_gguf.py`: tensor names `token_embd`, `blk.N.attn_q`, ...,
query and key rows permuted back from the Hugging Face rotary layout, the tokenizer written as
a `gpt2` model with its merges and special token ids. A tied output matrix is left out:
llama.cpp then uses the embedding.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

# Hugging Face parameter name (after `model.layers.N.`) -> llama.cpp tensor name (after `blk.N.`)
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def _unpermute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Rows of a query/key projection from Hugging Face's rotary order (halves) to llama.cpp's (pairs)."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _tensor_name(hf_name: str) -> str:
    if hf_name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[hf_name]
    prefix, _, rest = hf_name.partition(".layers.")
    layer, _, param = rest.partition(".")
    if prefix != "model" or not layer.isdigit() or param not in _LAYER_TENSORS:
        raise ValueError(f"no llama.cpp name for tensor {hf_name}")
    return f"blk.{layer}.{_LAYER_TENSORS[param]}"


def _add_tokenizer(writer: gguf.GGUFWriter, hf_dir: Path, config: dict) -> None:
    data = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = data["model"]["vocab"]
    special = {token["id"]: token["content"] for token in data["added_tokens"] if token["special"]}
    by_id = {index: text for text, index in vocab.items()} | special
    size = config["vocab_size"]
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    types = [
        gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED
        for i in range(size)
    ]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # the GPT-2 split regex, as the ByteLevel pre-tokenizer uses
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    if config.get("pad_token_id") is not None:
        writer.add_pad_token_id(config["pad_token_id"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


def write_llama_gguf(hf_dir: Path, out: Path) -> Path:
    """Write the Hugging Face Llama checkpoint in `hf_dir` as a float32 GGUF file at `out`."""
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise ValueError(f"{hf_dir} is a {config.get('model_type')!r} model, not llama")
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or {"rope_theta": config.get("rope_theta", 10000.0)}

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(hf_dir.name)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, hf_dir, config)

    for hf_name, weights in sorted(load_file(str(hf_dir / "model.safetensors")).items()):
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        if hf_name.endswith("q_proj.weight"):
            weights = _unpermute(weights, heads)
        elif hf_name.endswith("k_proj.weight"):
            weights = _unpermute(weights, kv_heads)
        writer.add_tensor(_tensor_name(hf_name), np.ascontiguousarray(weights, dtype=np.float32))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
