"""The encoder-decoder summarizer, after CodeT5+'s recipe for scaling: a shallow encoder and a deep
decoder initialized from a decoder-only code model (SmolLM2-135M, Qwen2.5-Coder-0.5B), the decoder
frozen.

Trainable: the encoder's layers (initialized from the decoder's first layers, run without the causal
mask) and cross-attention blocks added to the upper decoder layers. Everything else (embeddings, the
decoder's layers, the output projection) is the completion model's own weights, so the package
ships only the trained part (`delta.safetensors`) and the full model is assembled, next to the
completion model, from the same GGUF.

The forward pass here is written out (not transformers' Llama/Qwen2 code) so it is exactly what the
CTranslate2 `TransformerSpec` built in `inference.summarizer_assembly` computes: pre-norm RMSNorm
blocks, rotary embeddings (halves, not interleaved) in self-attention only, grouped KV heads,
query/key/value biases where the decoder has them (Qwen2), and a cross-attention block between
self-attention and the feed-forward block. The sizes are data (`Seq2SeqShape`), read from the
decoder's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Seq2SeqShape:
    """Sizes of the decoder and of the added parts."""

    vocab_size: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    decoder_layers: int
    rope_base: float
    norm_eps: float
    qkv_bias: bool = False  # the decoder's self-attention has query/key/value biases (Qwen2)
    encoder_layers: int = 2
    cross_every: int = 3  # a cross-attention block in every `cross_every`-th decoder layer, from the last one down
    cross_start: int = 0  # ... down to this layer: the layers below it never see the encoder
    encoder_mlp_trained: bool = True  # False: the encoder's feed-forward blocks stay the decoder's (not shipped)

    @property
    def cross_layers(self) -> tuple[int, ...]:
        return tuple(range(self.decoder_layers - 1, self.cross_start - 1, -self.cross_every))[::-1]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **added: Any) -> Seq2SeqShape:
        """The shape of a Hugging Face `config.json` (as read from a checkpoint or a GGUF) plus the added parts'."""
        if not config.get("tie_word_embeddings", True):
            raise ValueError("the summarizer shares the decoder's embeddings with its output projection; "
                             "this decoder has its own output matrix")
        rope = config.get("rope_parameters") or {}
        return cls(
            vocab_size=config["vocab_size"], hidden=config["hidden_size"], intermediate=config["intermediate_size"],
            heads=config["num_attention_heads"], kv_heads=config["num_key_value_heads"],
            head_dim=config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
            decoder_layers=config["num_hidden_layers"],
            rope_base=float(config.get("rope_theta") or rope.get("rope_theta", 10000.0)),
            norm_eps=float(config["rms_norm_eps"]),
            qkv_bias=bool(config.get("attention_bias", config.get("model_type") == "qwen2")), **added,
        )


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotary(x: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary embedding of (batch, heads, length, head_dim) at positions 0..length-1 (halves layout)."""
    dim = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) / dim))
    angles = torch.outer(torch.arange(x.shape[-2], dtype=torch.float32, device=x.device), inv)
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    half = dim // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Grouped-query attention; self-attention uses rotary embeddings (and the decoder's q/k/v biases, if
    any), cross-attention neither."""

    def __init__(self, shape: Seq2SeqShape, cross: bool) -> None:
        super().__init__()
        self.shape, self.cross = shape, cross
        kv, bias = shape.kv_heads * shape.head_dim, shape.qkv_bias and not cross
        self.q_proj = nn.Linear(shape.hidden, shape.heads * shape.head_dim, bias=bias)
        self.k_proj = nn.Linear(shape.hidden, kv, bias=bias)
        self.v_proj = nn.Linear(shape.hidden, kv, bias=bias)
        self.o_proj = nn.Linear(shape.heads * shape.head_dim, shape.hidden, bias=False)

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], n, self.shape.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        s = self.shape
        source = x if memory is None else memory
        q = self._heads(self.q_proj(x), s.heads)
        k, v = self._heads(self.k_proj(source), s.kv_heads), self._heads(self.v_proj(source), s.kv_heads)
        if not self.cross:
            q, k = rotary(q, s.rope_base), rotary(k, s.rope_base)
        repeat = s.heads // s.kv_heads
        k, v = k.repeat_interleave(repeat, 1), v.repeat_interleave(repeat, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.o_proj(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class MLP(nn.Module):
    def __init__(self, shape: Seq2SeqShape) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.up_proj = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.down_proj = nn.Linear(shape.intermediate, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """One pre-norm layer: self-attention, optional cross-attention, feed-forward."""

    def __init__(self, shape: Seq2SeqShape, with_cross: bool) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(shape.hidden, shape.norm_eps)
        self.self_attn = Attention(shape, cross=False)
        self.post_attention_layernorm = RMSNorm(shape.hidden, shape.norm_eps)
        self.mlp = MLP(shape)
        if with_cross:
            self.cross_layernorm = RMSNorm(shape.hidden, shape.norm_eps)
            self.cross_attn = Attention(shape, cross=True)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, causal: bool = False,
                memory: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), mask=mask, causal=causal)
        if memory is not None and hasattr(self, "cross_attn"):
            x = x + self.cross_attn(self.cross_layernorm(x), memory=memory, mask=memory_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderSeq2Seq(nn.Module):
    """Shared embeddings, a shallow bidirectional encoder, the completion model as decoder."""

    def __init__(self, shape: Seq2SeqShape) -> None:
        super().__init__()
        self.shape = shape
        self.embed_tokens = nn.Embedding(shape.vocab_size, shape.hidden)
        self.encoder = nn.ModuleList(Block(shape, with_cross=False) for _ in range(shape.encoder_layers))
        self.encoder_norm = RMSNorm(shape.hidden, shape.norm_eps)
        cross = set(shape.cross_layers)
        self.decoder = nn.ModuleList(Block(shape, with_cross=i in cross) for i in range(shape.decoder_layers))
        self.norm = RMSNorm(shape.hidden, shape.norm_eps)

    @classmethod
    def from_decoder(cls, weights: Mapping[str, np.ndarray], shape: Seq2SeqShape) -> DecoderSeq2Seq:
        """The model around a decoder's float32 `weights` (the names of `summarizer_assembly.read_checkpoint`:
        `embed_tokens.weight`, `norm.weight`, `decoder.N.…`). The encoder starts as the decoder's first
        layers, cross-attention as a no-op (its output projection is zero)."""
        model = cls(shape)
        state = model.state_dict()
        for name, value in weights.items():
            if name not in state:
                raise ValueError(f"the decoder's {name} has no place in the summarizer")
            state[name].copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))
            if name.startswith("decoder.") and int(name.split(".")[1]) < shape.encoder_layers:
                state["encoder." + name.removeprefix("decoder.")].copy_(state[name])
        generator = torch.Generator().manual_seed(0)
        for layer in model.decoder:
            if hasattr(layer, "cross_attn"):
                for projection in (layer.cross_attn.q_proj, layer.cross_attn.k_proj, layer.cross_attn.v_proj):
                    projection.weight.data.normal_(0.0, 0.02, generator=generator)
                layer.cross_attn.o_proj.weight.data.zero_()  # the untrained model is the language model
        return model

    def trainable_names(self) -> list[str]:
        """Parameters that are trained (and shipped): the encoder and the cross-attention blocks."""
        frozen_mlp = not self.shape.encoder_mlp_trained
        return [n for n, _ in self.named_parameters()
                if (n.startswith("encoder") and not (frozen_mlp and ".mlp." in n)) or ".cross_" in n]

    def freeze_decoder(self) -> None:
        keep = set(self.trainable_names())
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name in keep)

    def encode(self, source: torch.Tensor, source_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states and the additive mask that hides padding from attention."""
        additive = torch.zeros(source_mask.shape, dtype=torch.float32, device=source.device)
        additive = additive.masked_fill(~source_mask, float("-inf"))[:, None, None, :]
        x = self.embed_tokens(source)
        for layer in self.encoder:
            x = layer(x, mask=additive)
        return self.encoder_norm(x), additive

    def decode_states(self, target_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """The final normalized states of every target position (teacher forcing). The layers below
        the first cross-attention block never see the encoder, so they run without gradients."""
        first = min(self.shape.cross_layers, default=self.shape.decoder_layers)
        with torch.no_grad():
            x = self.embed_tokens(target_in)
            for layer in self.decoder[:first]:
                x = layer(x, causal=True)
        for layer in self.decoder[first:]:
            x = layer(x, causal=True, memory=memory, memory_mask=memory_mask)
        return self.norm(x)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return F.linear(states, self.embed_tokens.weight)

    def decode(self, target_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """Logits for every target position (teacher forcing)."""
        return self.logits(self.decode_states(target_in, memory, memory_mask))

    def forward(self, source: torch.Tensor, source_mask: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        memory, mask = self.encode(source, source_mask)
        return self.decode(target_in, memory, mask)

    @torch.inference_mode()
    def greedy(self, source: list[int], start: list[int], end: int, max_new: int = 40) -> list[int]:
        """Greedy decoding after the forced `start` ids, without a cache (for validation only)."""
        src = torch.tensor([source])
        memory, mask = self.encode(src, torch.ones_like(src, dtype=torch.bool))
        out = list(start)
        for _ in range(max_new):
            token = int(self.decode(torch.tensor([out]), memory, mask)[0, -1].argmax())
            if token == end:
                break
            out.append(token)
        return out[len(start):]
