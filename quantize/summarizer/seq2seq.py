"""The embedded summarizer, after CodeT5+'s recipe for scaling: a shallow encoder and a deep decoder
initialized from the completion model (SmolLM2-135M), the decoder frozen.

Trainable: the encoder's layers (initialized from the decoder's first layers, run without the causal
mask) and cross-attention blocks added to some decoder layers. Everything else (embeddings, the
decoder's 30 layers, the output projection) is the completion model's own weights, so the package
ships only the trained part (`delta.safetensors`) and the full model is assembled, next to the
completion model, from the same GGUF.

The forward pass here is written out (not transformers' Llama code) so it is exactly what the
CTranslate2 `TransformerSpec` built in `quantize.summarizer.smol_ct2` computes: pre-norm RMSNorm
blocks, rotary embeddings (halves, not interleaved) in self-attention only, grouped KV heads, and a
cross-attention block between self-attention and the feed-forward block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SmolShape:
    """Sizes of the completion model and of the added parts."""

    vocab_size: int = 49152
    hidden: int = 576
    intermediate: int = 1536
    heads: int = 9
    kv_heads: int = 3
    head_dim: int = 64
    decoder_layers: int = 30
    rope_base: float = 100000.0
    norm_eps: float = 1e-5
    encoder_layers: int = 2
    cross_every: int = 3  # a cross-attention block in every 3rd decoder layer (from the last one down)

    @property
    def cross_layers(self) -> tuple[int, ...]:
        return tuple(range(self.decoder_layers - 1, -1, -self.cross_every))[::-1]

    @classmethod
    def from_hf_config(cls, config: object, **added: int) -> SmolShape:
        rope = getattr(config, "rope_parameters", None) or {}
        return cls(
            vocab_size=config.vocab_size, hidden=config.hidden_size, intermediate=config.intermediate_size,
            heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
            decoder_layers=config.num_hidden_layers, rope_base=float(rope.get("rope_theta", 10000.0)),
            norm_eps=float(config.rms_norm_eps), **added,
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
    """Grouped-query attention; self-attention uses rotary embeddings, cross-attention none."""

    def __init__(self, shape: SmolShape, cross: bool) -> None:
        super().__init__()
        self.shape, self.cross = shape, cross
        kv = shape.kv_heads * shape.head_dim
        self.q_proj = nn.Linear(shape.hidden, shape.heads * shape.head_dim, bias=False)
        self.k_proj = nn.Linear(shape.hidden, kv, bias=False)
        self.v_proj = nn.Linear(shape.hidden, kv, bias=False)
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
    def __init__(self, shape: SmolShape) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.up_proj = nn.Linear(shape.hidden, shape.intermediate, bias=False)
        self.down_proj = nn.Linear(shape.intermediate, shape.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """One pre-norm layer: self-attention, optional cross-attention, feed-forward."""

    def __init__(self, shape: SmolShape, with_cross: bool) -> None:
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


class SmolSeq2Seq(nn.Module):
    """Shared embeddings, a shallow bidirectional encoder, the completion model as decoder."""

    def __init__(self, shape: SmolShape) -> None:
        super().__init__()
        self.shape = shape
        self.embed_tokens = nn.Embedding(shape.vocab_size, shape.hidden)
        self.encoder = nn.ModuleList(Block(shape, with_cross=False) for _ in range(shape.encoder_layers))
        self.encoder_norm = RMSNorm(shape.hidden, shape.norm_eps)
        cross = set(shape.cross_layers)
        self.decoder = nn.ModuleList(Block(shape, with_cross=i in cross) for i in range(shape.decoder_layers))
        self.norm = RMSNorm(shape.hidden, shape.norm_eps)

    @classmethod
    def from_causal_lm(cls, lm: nn.Module, shape: SmolShape) -> SmolSeq2Seq:
        """Copy the completion model in; the encoder starts as its first layers, cross-attention as a no-op."""
        model = cls(shape)
        source = lm.model
        model.embed_tokens.weight.data.copy_(source.embed_tokens.weight.data)
        model.norm.weight.data.copy_(source.norm.weight.data)
        for mine, theirs in zip(model.decoder, source.layers):
            mine.load_state_dict(theirs.state_dict(), strict=False)
        for mine, theirs in zip(model.encoder, source.layers):
            mine.load_state_dict(theirs.state_dict(), strict=False)
        for layer in model.decoder:
            if hasattr(layer, "cross_attn"):
                nn.init.normal_(layer.cross_attn.q_proj.weight, std=0.02)
                nn.init.normal_(layer.cross_attn.k_proj.weight, std=0.02)
                nn.init.normal_(layer.cross_attn.v_proj.weight, std=0.02)
                nn.init.zeros_(layer.cross_attn.o_proj.weight)  # the untrained model is the language model
        return model

    def trainable_names(self) -> list[str]:
        """Parameters that are trained (and shipped): the encoder and the cross-attention blocks."""
        return [n for n, _ in self.named_parameters() if n.startswith("encoder") or ".cross_" in n]

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

    def decode(self, target_in: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """Logits for every target position (teacher forcing)."""
        x = self.embed_tokens(target_in)
        for layer in self.decoder:
            x = layer(x, causal=True, memory=memory, memory_mask=memory_mask)
        return F.linear(self.norm(x), self.embed_tokens.weight)

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
