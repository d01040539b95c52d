"""GGUF files written offline for the tests: the tiny trained Llama, and random Qwen2/Llama decoders.

`write_llama_gguf` is a small converter for one shape (Llama, byte-level BPE tokenizer, float32
weights), following llama.cpp's `convert_hf_to_gguf.py`: tensor names `token_embd`,
`blk.N.attn_q`, ..., query and key rows permuted back from the Hugging Face rotary layout, the
tokenizer written as a `gpt2` model with its merges and special token ids. A tied output matrix
is left out: llama.cpp then uses the embedding.

`write_random_gguf` writes a Qwen2- or Llama-shaped decoder with random weights stored in the
tensor types of the real Qwen2.5-Coder Q4_K_M file (Q4_K, Q5_0, Q6_K, Q8_0, F16, F32) and a
byte-level BPE tokenizer trained on the spot, with Qwen's control tokens. The `gguf` package
cannot quantize K-quants in numpy, so those tensors are random valid blocks (finite scales).
Needs numpy, gguf and tokenizers only (no torch).
"""

from __future__ import annotations

import json
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import load_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

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
    _add_bpe_tokenizer(writer, data, config["vocab_size"], pre="gpt-2")
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    if config.get("pad_token_id") is not None:
        writer.add_pad_token_id(config["pad_token_id"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


def _add_bpe_tokenizer(writer: gguf.GGUFWriter, data: dict, size: int, *, pre: str) -> None:
    """Tokens (padded to `size` with `[PADn]`), their types, the merges and the split regex name."""
    vocab: dict[str, int] = data["model"]["vocab"]
    special = {token["id"]: token["content"] for token in data["added_tokens"] if token["special"]}
    by_id = {index: text for text, index in vocab.items()} | special
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    types = [
        gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED
        for i in range(size)
    ]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)  # "gpt-2": the split regex the ByteLevel pre-tokenizer uses
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)


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


# --- random Qwen2 / Llama decoders -------------------------------------------------------------

CONTROL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
TRAINING_MODULES = ("textwrap", "heapq", "bisect", "fnmatch")
QWEN2_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
# Tensor types as in the real Qwen2.5-Coder-0.5B Q4_K_M file, varied per layer so that every type
# is used for every kind of matrix somewhere. Norms and biases are F32 there too.
MIXED_TYPES: dict[str, tuple[Q, ...]] = {
    "attn_q": (Q.Q5_0, Q.Q4_K),
    "attn_k": (Q.Q5_0, Q.Q6_K),
    "attn_v": (Q.Q6_K, Q.Q8_0),
    "attn_output": (Q.Q4_K, Q.F16),
    "ffn_gate": (Q.Q5_0, Q.Q4_K),
    "ffn_up": (Q.Q4_K, Q.Q5_0),
    "ffn_down": (Q.Q6_K, Q.Q5_0),
    "output": (Q.Q6_K,),
}  # the embedding is Q8_0


@dataclass(frozen=True)
class DecoderShape:
    """A tiny Qwen2.5-Coder-like decoder; row lengths are multiples of 256 for the K-quants."""

    architecture: str = "qwen2"
    layers: int = 2
    hidden: int = 256
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 512
    rope_theta: float = 1_000_000.0
    norm_eps: float = 1e-6
    context: int = 512


def train_bpe_tokenizer(vocab_size: int = 600, *, qwen2_split: bool = True) -> Tokenizer:
    """A byte-level BPE trained on a few stdlib modules, the control tokens appended at the end (as Qwen's)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [(stdlib / f"{name}.py").read_text(encoding="utf-8") for name in TRAINING_MODULES]
    bpe = Tokenizer(models.BPE())
    if qwen2_split:
        bpe.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(texts, trainer)
    bpe.add_special_tokens(list(CONTROL_TOKENS))
    return bpe


def _random_blocks(rng: np.random.Generator, rows: int, cols: int, qtype: Q) -> np.ndarray:
    """Random valid Q4_K / Q6_K blocks: random quants and sub-scales, small finite f16 super-scales."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    data = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    if qtype == Q.Q4_K:  # d, dmin (f16), 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
        data[..., 0:4] = rng.uniform(0.0001, 0.0004, size=(rows, cols // block, 2)).astype(np.float16).view(np.uint8)
    elif qtype == Q.Q6_K:  # 128 bytes low bits, 64 bytes high bits, 16 int8 scales, d (f16)
        data[..., 192:208] = rng.integers(-32, 33, size=(rows, cols // block, 16)).astype(np.int8).view(np.uint8)
        data[..., 208:210] = rng.uniform(0.0001, 0.0003, size=(rows, cols // block, 1)).astype(np.float16).view(np.uint8)
    else:
        raise ValueError(f"no random block writer for {qtype.name}")
    return data.reshape(rows, -1)


def _encoded(rng: np.random.Generator, rows: int, cols: int, qtype: Q, std: float) -> np.ndarray:
    if qtype in (Q.Q4_K, Q.Q6_K):
        return _random_blocks(rng, rows, cols, qtype)
    values = rng.normal(0.0, std, size=(rows, cols)).astype(np.float32)
    return gguf.quants.quantize(values, qtype)


def write_random_gguf(
    out: Path, tokenizer: Tokenizer, shape: DecoderShape = DecoderShape(), *,
    types: dict[str, tuple[Q, ...]] | None = None, seed: int = 0, add_bos: bool = False, output: str = "tied",
    tensor_type: Q | None = None,
) -> Path:
    """A decoder GGUF with random weights (each matrix kind cycling through `types` by layer).

    `output`: "tied" writes no output matrix; "random" its own; "copy" the embedding again, as F16
    (one matrix stored twice in different types, as the real Qwen file does). `tensor_type` stores
    the first layer's query matrix as random bytes of that type (for unsupported types).
    """
    types = MIXED_TYPES if types is None else types
    rng = np.random.default_rng(seed)
    arch, head_dim = shape.architecture, shape.hidden // shape.heads
    data = json.loads(tokenizer.to_str())
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name(f"tiny random {arch}")
    writer.add_block_count(shape.layers)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    if arch == "llama":
        writer.add_rope_dimension_count(head_dim)
        writer.add_vocab_size(vocab_size)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.norm_eps)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    _add_bpe_tokenizer(writer, data, vocab_size, pre="qwen2" if arch == "qwen2" else "gpt-2")
    endoftext = tokenizer.token_to_id("<|endoftext|>")
    writer.add_bos_token_id(endoftext)
    writer.add_eos_token_id(tokenizer.token_to_id("<|im_end|>"))
    writer.add_pad_token_id(endoftext)
    writer.add_add_bos_token(add_bos)

    def matrix(name: str, kind: str, layer: int, rows: int, cols: int, std: float) -> None:
        qtype = types[kind][layer % len(types[kind])]
        writer.add_tensor(name, _encoded(rng, rows, cols, qtype, std), raw_dtype=qtype)

    def vector(name: str, size: int, mean: float, std: float) -> None:
        writer.add_tensor(name, rng.normal(mean, std, size).astype(np.float32))

    kv = shape.kv_heads * head_dim
    embedding = rng.normal(0.0, 0.15, size=(vocab_size, shape.hidden)).astype(np.float32)
    writer.add_tensor("token_embd.weight", gguf.quants.quantize(embedding, Q.Q8_0), raw_dtype=Q.Q8_0)
    for i in range(shape.layers):
        block = f"blk.{i}"
        vector(f"{block}.attn_norm.weight", shape.hidden, 1.0, 0.1)
        for part, rows in (("attn_q", shape.hidden), ("attn_k", kv), ("attn_v", kv)):
            if tensor_type is not None and (i, part) == (0, "attn_q"):
                block_size, type_size = gguf.GGML_QUANT_SIZES[tensor_type]
                raw = rng.integers(0, 256, size=(rows, shape.hidden // block_size * type_size), dtype=np.uint8)
                writer.add_tensor(f"{block}.{part}.weight", raw, raw_dtype=tensor_type)
            else:
                matrix(f"{block}.{part}.weight", part, i, rows, shape.hidden, 0.06)
            if arch == "qwen2":
                vector(f"{block}.{part}.bias", rows, 0.0, 0.5)
        matrix(f"{block}.attn_output.weight", "attn_output", i, shape.hidden, shape.hidden, 0.06)
        vector(f"{block}.ffn_norm.weight", shape.hidden, 1.0, 0.1)
        matrix(f"{block}.ffn_gate.weight", "ffn_gate", i, shape.ffn, shape.hidden, 0.06)
        matrix(f"{block}.ffn_up.weight", "ffn_up", i, shape.ffn, shape.hidden, 0.06)
        matrix(f"{block}.ffn_down.weight", "ffn_down", i, shape.hidden, shape.ffn, 0.04)
    vector("output_norm.weight", shape.hidden, 1.0, 0.1)
    if output == "random":
        matrix("output.weight", "output", 0, vocab_size, shape.hidden, 0.15)
    elif output == "copy":
        writer.add_tensor("output.weight", embedding.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
