"""GGUF (`llama`, `qwen2`) -> CTranslate2 decoder directory with numpy alone: no torch, no transformers.

The `gguf` package reads and dequantizes the file tensor by tensor (the embedding by blocks of
rows), and each weight is quantized to the target type at once by CTranslate2's own spec code
(`LayerSpec.optimize` on the leaf spec it belongs to), so the float32 model never exists whole.
llama.cpp's conventions are undone on the way: its tensor names (`blk.N.attn_q`, ...), the
query/key rows of `llama` files permuted for its rotary layout (`qwen2` files are written
unpermuted, as transformers' GGUF loader also assumes), and a tied output matrix left out of
the file (CTranslate2 then stores the embedding once and aliases the projection to it).

The tokenizer is rebuilt from the `tokenizer.ggml.*` metadata as transformers' GGUF loader
builds it: byte-level BPE with the file's merges, the split regex named by `tokenizer.ggml.pre`,
control tokens as special tokens, BOS added when the file says so.
"""

from __future__ import annotations

import functools
import json
import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from .conversion_errors import ConversionError
from ..engines.memory import release_free_memory

Progress = Callable[[str], None] | None

HF_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
# Rows of a large matrix (the embedding) dequantized and quantized at a time.
_CHUNK_VALUES = 1 << 22
# An embedding and an output matrix closer than this (relative, on sampled rows) are one matrix
# quantized twice: quantization error is a few percent, two different matrices are about 140% apart.
_SAME_MATRIX_TOLERANCE = 0.25

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
# `tokenizer.ggml.pre` -> the split regex, for the pre-tokenizers of llama/qwen2 files that
# transformers' GGUF loader knows (integrations/gguf/gguf_tokenizer_mapping.py); any other name
# gets GPT-2's split, as there.
PRE_TOKENIZER_SPLITS = {
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx"), _LLAMA3_SPLIT),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez"), _QWEN2_SPLIT),
}
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types


# Tensor types the `gguf` package dequantizes in numpy and this converter was checked with.
DEQUANTIZABLE = frozenset(GGMLQuantizationType[name] for name in (
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
))


def _bits_per_weight(tensor: Any) -> float:
    block, size = GGML_QUANT_SIZES[tensor.tensor_type]
    return 8 * size / block


@dataclass(frozen=True)
class DecoderConfig:
    """The shape of a Llama/Qwen2 decoder, read from a GGUF's metadata."""

    architecture: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    rope_theta: float
    norm_eps: float
    context_length: int
    vocab_size: int
    tied: bool

    def hf_config(self) -> dict[str, Any]:
        """The equivalent Hugging Face `config.json` (the fields the converters read)."""
        return {
            "architectures": [HF_ARCHITECTURES[self.architecture]], "model_type": self.architecture,
            "hidden_size": self.hidden, "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads, "head_dim": self.head_dim, "intermediate_size": self.ffn,
            "rope_theta": self.rope_theta, "rms_norm_eps": self.norm_eps,
            "max_position_embeddings": self.context_length, "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tied,
        }


class GGUFModel:
    """An open GGUF file: its metadata, its tensors as float32 and, for a Llama/Qwen2 decoder, its shape."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConversionError(f"GGUF file not found: {self.path}")
        try:
            self._reader = GGUFReader(str(self.path))
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ConversionError(
                f"{self.path} is not a readable GGUF model file ({exc}); it may be truncated: fetch it again"
            ) from exc
        self.tensors = {t.name: t for t in self._reader.tensors}
        size = self.path.stat().st_size
        for tensor in self.tensors.values():
            if tensor.data_offset + tensor.n_bytes > size:
                raise ConversionError(f"{self.path} is truncated (tensor {tensor.name} runs past its end); fetch it again")

    def _check_types(self) -> None:
        for tensor in self.tensors.values():
            if tensor.tensor_type not in DEQUANTIZABLE:
                raise ConversionError(
                    f"{self.path}: tensor {tensor.name} has type {tensor.tensor_type.name}, which this converter "
                    f"cannot dequantize (known: {', '.join(sorted(t.name for t in DEQUANTIZABLE))}); "
                    "use a GGUF quantized with those types, or convert the Hugging Face checkpoint with codet5-quantize"
                )

    def field(self, key: str, default: Any = ConversionError) -> Any:
        """The value of metadata `key`; without a default, a missing key is a ConversionError."""
        field = self._reader.fields.get(key)
        if field is None:
            if default is ConversionError:
                raise ConversionError(f"{self.path} lacks the metadata key {key!r}; is it a complete GGUF model?")
            return default
        return field.contents()

    @property
    def architecture(self) -> str:
        return str(self.field("general.architecture"))

    @functools.cached_property
    def config(self) -> DecoderConfig:
        """The decoder's shape; a ConversionError if this converter cannot convert the file."""
        arch = self.architecture
        if arch not in HF_ARCHITECTURES:
            raise ConversionError(
                f"{self.path} is a {arch!r} model; the numpy converter knows {', '.join(HF_ARCHITECTURES)} "
                "(convert_gguf_to_ct2 converts others with the [hf] extra)"
            )
        self._check_types()
        if str(self.field(f"{arch}.rope.scaling.type", "none")) not in ("none", "") or "rope_freqs.weight" in self.tensors:
            raise ConversionError(f"{self.path} uses scaled rotary embeddings, which this converter does not support")
        heads, hidden = int(self.field(f"{arch}.attention.head_count")), int(self.field(f"{arch}.embedding_length"))
        head_dim = int(self.field(f"{arch}.attention.key_length", hidden // heads))
        if int(self.field(f"{arch}.rope.dimension_count", head_dim)) != head_dim:
            raise ConversionError(f"{self.path} rotates only part of each head, which this converter does not support")
        embedding = self.tensors.get("token_embd.weight")
        if embedding is None:
            raise ConversionError(f"{self.path} has no token_embd.weight tensor; is it a complete GGUF model?")
        return DecoderConfig(
            architecture=arch, layers=int(self.field(f"{arch}.block_count")), hidden=hidden, heads=heads,
            kv_heads=int(self.field(f"{arch}.attention.head_count_kv", heads)), head_dim=head_dim,
            ffn=int(self.field(f"{arch}.feed_forward_length")),
            rope_theta=float(self.field(f"{arch}.rope.freq_base", 10000.0)),
            norm_eps=float(self.field(f"{arch}.attention.layer_norm_rms_epsilon")),
            context_length=int(self.field(f"{arch}.context_length")),
            vocab_size=int(embedding.shape[-1]), tied=self.embedding_tensor is not None,
        )

    @functools.cached_property
    def embedding_tensor(self) -> str | None:
        """The tensor to use as both the embedding and the output projection, or None if they differ.

        A tied model's file has no `output.weight`. Some files hold both, quantized differently,
        though they are one matrix (Qwen2.5-Coder-0.5B Q4_K_M: `token_embd` Q5_0, `output` Q8_0,
        4.4% apart, the Q5_0 error): then the more precise one serves both, stored once.
        """
        output = self.tensors.get("output.weight")
        if output is None:
            return "token_embd.weight"
        embedding = self._tensor("token_embd.weight")
        if list(embedding.shape) != list(output.shape):
            return None
        rows = np.linspace(0, embedding.data.shape[0] - 1, min(2048, embedding.data.shape[0])).astype(np.int64)
        a, b = (np.asarray(dequantize(t.data[rows], t.tensor_type), np.float32) for t in (embedding, output))
        self._release(embedding)
        self._release(output)
        if np.linalg.norm(a - b) > _SAME_MATRIX_TOLERANCE * np.linalg.norm(b):
            return None
        return max((embedding, output), key=_bits_per_weight).name

    def forget(self, *keys: str) -> None:
        """Free the parsed metadata `keys` (the token and merge lists take about 500 MB as parsed)."""
        for key in keys:
            self._reader.fields.pop(key, None)

    def _tensor(self, name: str) -> Any:
        tensor = self.tensors.get(name)
        if tensor is None:
            raise ConversionError(f"{self.path} has no tensor {name}; is it a complete {self.architecture} model?")
        return tensor

    def _release(self, tensor: Any) -> None:
        """Drop the file pages of `tensor` from this process's memory (they are read again if needed)."""
        memory = getattr(self._reader.data, "_mmap", None)
        if memory is None or not hasattr(memory, "madvise"):
            return
        start = tensor.data_offset - tensor.data_offset % mmap.PAGESIZE
        end = tensor.data_offset + tensor.n_bytes
        memory.madvise(mmap.MADV_DONTNEED, start, end - start)

    def rows(self, name: str, chunk_values: int = _CHUNK_VALUES) -> Iterator[np.ndarray]:
        """Tensor `name` as writable float32 blocks of rows, in order (a vector: one block)."""
        tensor = self._tensor(name)
        data = tensor.data
        step = max(1, chunk_values // int(tensor.shape[0])) if data.ndim > 1 else 1
        try:
            for start in range(0, data.shape[0] if data.ndim > 1 else 1, step):
                values = dequantize(data[start:start + step] if data.ndim > 1 else data, tensor.tensor_type)
                yield np.array(values, dtype=np.float32, copy=not values.flags.writeable)  # F32: a view of the file
        finally:
            self._release(tensor)

    def weight(self, name: str) -> np.ndarray:
        """Tensor `name` as float32 in Hugging Face orientation ([out, in] for a matrix)."""
        blocks = list(self.rows(name))
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _unpermute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Query/key rows from llama.cpp's rotary order (pairs) back to Hugging Face's (halves)."""
    return weights.reshape(heads, weights.shape[0] // heads // 2, 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def layer_weights(model: GGUFModel, i: int) -> dict[str, np.ndarray]:
    """Layer `i`'s float32 weights under their Hugging Face names (after `model.layers.i.`)."""
    config, block = model.config, f"blk.{i}"
    names = {
        "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    if config.architecture == "qwen2":
        names |= {f"self_attn.{p}_proj.bias": f"attn_{p}.bias" for p in "qkv"}
    weights = {hf: model.weight(f"{block}.{name}") for hf, name in names.items()}
    if config.architecture == "llama":
        weights["self_attn.q_proj.weight"] = _unpermute(weights["self_attn.q_proj.weight"], config.heads)
        weights["self_attn.k_proj.weight"] = _unpermute(weights["self_attn.k_proj.weight"], config.kv_heads)
    return weights


def _check_unused(model: GGUFModel) -> None:
    config = model.config
    known = {"token_embd.weight", "output_norm.weight", "output.weight"}
    parts = ["attn_norm.weight", "ffn_norm.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
             "ffn_down.weight", *(f"attn_{p}.weight" for p in "qkv")]
    if config.architecture == "qwen2":
        parts += [f"attn_{p}.bias" for p in "qkv"]
    known |= {f"blk.{i}.{part}" for i in range(config.layers) for part in parts}
    unknown = sorted(set(model.tensors) - known)
    if unknown:
        raise ConversionError(
            f"{model.path} holds tensors a plain {model.config.architecture} decoder has not "
            f"({', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''}); this converter cannot use it"
        )


def hf_weights(model: GGUFModel) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Float32 weights under Hugging Face names (`model.layers.0.self_attn.q_proj.weight`, ...) and the
    Hugging Face config of a Llama/Qwen2 GGUF. A tied output matrix is not repeated as `lm_head.weight`."""
    _check_unused(model)
    weights: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": model.weight(model.embedding_tensor or "token_embd.weight"),
        "model.norm.weight": model.weight("output_norm.weight"),
    }
    if not model.config.tied:
        weights["lm_head.weight"] = model.weight("output.weight")
    for i in range(model.config.layers):
        weights |= {f"model.layers.{i}.{k}": v for k, v in layer_weights(model, i).items()}
    return weights, model.config.hf_config()


# --- tokenizer --------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies are spelled in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(extra)}}


@dataclass(frozen=True)
class GGUFTokenizer:
    """The tokenizer a GGUF describes: `tokenizers` object, its vocabulary by id, and its special tokens."""

    tokenizer: Any  # tokenizers.Tokenizer
    vocabulary: list[str]
    specials: dict[str, str | None]  # bos_token, eos_token, unk_token, pad_token
    add_bos: bool
    add_eos: bool
    chat_template: str | None

    def config(self) -> dict[str, Any]:
        """`tokenizer_config.json`, as transformers reads it and as inference/engines/tokenizer.py does."""
        config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": self.add_bos,
                                  "add_eos_token": self.add_eos, "clean_up_tokenization_spaces": False,
                                  **self.specials}
        if self.chat_template:
            config["chat_template"] = self.chat_template
        return config

    def save(self, directory: Path) -> None:
        """Write `tokenizer.json` and `tokenizer_config.json` into `directory`."""
        self.tokenizer.save(str(Path(directory) / "tokenizer.json"))
        (Path(directory) / "tokenizer_config.json").write_text(json.dumps(self.config(), indent=2) + "\n", encoding="utf-8")


def read_tokenizer(model: GGUFModel) -> GGUFTokenizer:
    """The byte-level BPE tokenizer of `model`'s metadata, built as transformers' GGUF loader builds it."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    kind = model.field("tokenizer.ggml.model", None)
    if kind != "gpt2":
        raise ConversionError(
            f"{model.path} has a {kind!r} tokenizer; the numpy converter reads byte-level BPE ('gpt2') tokenizers only"
        )
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())
    raw = model.field("tokenizer.ggml.tokens")
    tokens = [t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8")) for t in raw]
    types = list(model.field("tokenizer.ggml.token_type", [1] * len(raw)))
    merges = [tuple(m.split(" ")) for m in model.field("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                                     end_of_word_suffix="", fuse_unk=False))
    split = PRE_TOKENIZER_SPLITS.get(str(model.field("tokenizer.ggml.pre", "")))
    if split is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tokenizer.decoder = decoders.ByteLevel()
    # Control tokens spelled outside the byte alphabet are llama.cpp mislabels (transformers skips them too).
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                  for t, token_type in zip(raw, types) if token_type == _CONTROL and set(t) <= alphabet])
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False)
                          for t, token_type in zip(raw, types) if token_type == _USER_DEFINED and t in vocab])

    def special(key: str) -> str | None:
        index = model.field(f"tokenizer.ggml.{key}", None)
        return tokens[int(index)] if index is not None and 0 <= int(index) < len(tokens) else None

    specials = {"bos_token": special("bos_token_id"), "eos_token": special("eos_token_id"),
                "unk_token": special("unknown_token_id"), "pad_token": special("padding_token_id")}
    add_bos = bool(model.field("tokenizer.ggml.add_bos_token", False)) and specials["bos_token"] is not None
    add_eos = bool(model.field("tokenizer.ggml.add_eos_token", False)) and specials["eos_token"] is not None
    bos, eos = specials["bos_token"], specials["eos_token"]
    single = f"{bos + ':0 ' if add_bos else ''}$A:0{' ' + eos + ':0' if add_eos else ''}"
    pair = f"{single}{' ' + bos + ':1' if add_bos else ''} $B:1{' ' + eos + ':1' if add_eos else ''}"
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, pair=pair,
        special_tokens=[(t, tokenizer.token_to_id(t)) for t, used in ((bos, add_bos), (eos, add_eos)) if used],
    )
    return GGUFTokenizer(tokenizer, tokens, specials, add_bos, add_eos, model.field("tokenizer.chat_template", None))


# --- CTranslate2 spec -------------------------------------------------------------------------


def _optimized(leaf: Any, quantization: str, **values: np.ndarray) -> Any:
    """Set `values` on the leaf spec `leaf` and quantize them there (CTranslate2's own rules per variable)."""
    for name, value in values.items():
        setattr(leaf, name, value)
    leaf.validate()
    leaf.optimize(quantization=quantization)
    return leaf


def _optimized_rows(make_leaf: Callable[[], Any], target: Any, blocks: Iterator[np.ndarray], quantization: str) -> None:
    """Quantize a large matrix block of rows by block of rows (int8 scales are per row) into `target`."""
    parts: dict[str, list[np.ndarray]] = {}
    for block in blocks:
        leaf = _optimized(make_leaf(), quantization, weight=block)
        for name in ("weight", "weight_scale"):
            value = getattr(leaf, name)
            if not isinstance(value, str):  # not OPTIONAL
                parts.setdefault(name, []).append(np.asarray(value.numpy()))
    for name, arrays in parts.items():
        setattr(target, name, np.concatenate(arrays) if len(arrays) > 1 else arrays[0])


def build_spec(model: GGUFModel, vocabulary: list[str], specials: dict[str, str | None], quantization: str,
               progress: Progress = None) -> Any:
    """The CTranslate2 `TransformerDecoderModelSpec` of `model` (its tokenizer's `vocabulary` and
    `specials`), its weights already in `quantization`."""
    from ctranslate2.specs import common_spec, transformer_spec

    config = model.config
    _check_unused(model)
    spec = transformer_spec.TransformerDecoderModelSpec.from_config(
        config.layers, config.heads, activation=common_spec.Activation.SWISH, pre_norm=True, ffn_glu=True,
        rms_norm=True, rotary_dim=0, rotary_interleave=False, rotary_base=config.rope_theta,
        num_heads_kv=None if config.kv_heads == config.heads else config.kv_heads,
        head_dim=None if config.head_dim * config.heads == config.hidden else config.head_dim,
    )
    decoder = spec.decoder
    decoder.scale_embeddings = False
    embedding = model.embedding_tensor or "token_embd.weight"
    _optimized_rows(common_spec.EmbeddingsSpec, decoder.embeddings, model.rows(embedding), quantization)
    for i, layer in enumerate(decoder.layer):
        if progress is not None and i % 8 == 0:
            progress(f"Converting layer {i + 1}/{config.layers}")
        w = layer_weights(model, i)
        attention, ffn = layer.self_attention, layer.ffn
        _optimized(attention.layer_norm, quantization, gamma=w["input_layernorm.weight"])
        qkv = {"weight": np.concatenate([w[f"self_attn.{p}_proj.weight"] for p in "qkv"])}
        if config.architecture == "qwen2":
            qkv["bias"] = np.concatenate([w[f"self_attn.{p}_proj.bias"] for p in "qkv"])
        _optimized(attention.linear[0], quantization, **qkv)
        _optimized(attention.linear[1], quantization, weight=w["self_attn.o_proj.weight"])
        _optimized(ffn.layer_norm, quantization, gamma=w["post_attention_layernorm.weight"])
        _optimized(ffn.linear_0, quantization, weight=w["mlp.gate_proj.weight"])
        _optimized(ffn.linear_0_noact, quantization, weight=w["mlp.up_proj.weight"])
        _optimized(ffn.linear_1, quantization, weight=w["mlp.down_proj.weight"])
        del w
        release_free_memory()  # the layer's float32 copies: glibc would keep their pages
    _optimized(decoder.layer_norm, quantization, gamma=model.weight("output_norm.weight"))
    if config.tied:
        decoder.projection.weight = decoder.embeddings.weight  # for validate(); aliased below
    else:
        _optimized_rows(common_spec.LinearSpec, decoder.projection, model.rows("output.weight"), quantization)

    if len(vocabulary) > config.vocab_size:
        raise ConversionError(f"{model.path} lists {len(vocabulary)} tokens for an embedding of {config.vocab_size} rows")
    spec.register_vocabulary(vocabulary + [f"<extra_id_{i}>" for i in range(config.vocab_size - len(vocabulary))])
    spec.config.bos_token = specials["bos_token"] or specials["pad_token"] or ""
    spec.config.eos_token = specials["eos_token"] or ""
    spec.config.unk_token = specials["unk_token"] or ""
    spec.config.layer_norm_epsilon = config.norm_eps
    spec.validate()
    if config.tied:  # written once: CTranslate2 aliases the projection (and its int8 scales) to the embedding
        decoder.projection.weight = "decoder/embeddings/weight"
    return spec


def write_tokenizer(model: GGUFModel, out_dir: Path, progress: Progress = None) -> tuple[list[str], dict[str, str | None]]:
    """Write `model`'s tokenizer into `out_dir` and free the parsed token lists; its vocabulary and
    special tokens. An unsupported file fails first, before any work."""
    if progress is not None:
        progress(f"Reading {model.path.name} ({model.architecture})")
    model.config  # a ConversionError for a file this converter cannot read
    tokenizer = read_tokenizer(model)
    tokenizer.save(out_dir)
    vocabulary, specials = tokenizer.vocabulary, tokenizer.specials
    # The parsed token lists and the tokenizer hold about 650 MB for Qwen's 151,936 tokens: free them first.
    del tokenizer
    model.forget("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")
    release_free_memory()
    return vocabulary, specials


def source_metadata(model: GGUFModel) -> dict[str, Any]:
    """What a converted directory's metadata records about its GGUF source."""
    from importlib.metadata import version

    return {"architecture": HF_ARCHITECTURES[model.config.architecture], "context_length": model.config.context_length,
            "gguf": version("gguf")}


def convert(model: GGUFModel, out_dir: Path, quantization: str, progress: Progress = None) -> dict[str, Any]:
    """Write the CTranslate2 model and tokenizer of `model` into the existing directory `out_dir`;
    returns what the metadata should record about the source (architecture, context length)."""
    vocabulary, specials = write_tokenizer(model, out_dir, progress)
    if progress is not None:
        progress(f"Converting to CTranslate2 {quantization}")
    build_spec(model, vocabulary, specials, quantization, progress).save(str(out_dir))
    return source_metadata(model)
