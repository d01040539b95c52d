"""GGUF (`llama`, `qwen2`) -> ONNX Runtime decoder directory with numpy and `onnx` alone: no torch.

The graph is written with ONNX Runtime's CPU contrib operators, the ones its own model builder
uses for these decoders: `MatMulNBits` (int8 weights in blocks of 32 rows with a float32 scale
each; int4: the layers' matrices in 4 bits with a scale and a zero point per block, the output
matrix in 8; plain `MatMul` for float32), `RotaryEmbedding` with explicit position ids,
`GroupQueryAttention` taking and returning each layer's key/value cache, and the fused RMS norms.
The cache is an input and an output, so the engine (inference/engines/onnx_engine.py) keeps it
between requests and continues any earlier prompt from its longest common prefix; CTranslate2
can only reuse a prompt that matches exactly.

Weights come from `gguf_ct2.GGUFModel` (dequantized tensor by tensor) and are quantized again
here. The token embedding is looked up outside the graph from int8 rows with a scale each
(`embedding.safetensors`); logits are computed for the last `last_positions` positions only (one
for a prompt, several when the engine checks drafted ids in one pass).

Directory: `model.onnx` + `model.onnx.data` (weights), `embedding.safetensors`, the tokenizer
files and `codet5_lsp.json` (written by the caller).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .gguf_ct2 import GGUFModel, Progress, layer_weights, source_metadata, write_tokenizer

GRAPH_FILE = "model.onnx"
WEIGHTS_FILE = "model.onnx.data"
EMBEDDING_FILE = "embedding.safetensors"
QUANTIZATIONS = ("int8", "int4", "float32")  # int4: the layers' matrices in 4 bits, the output matrix in 8
BLOCK = 32  # MatMulNBits rows per scale
GRAPH_VERSION = 2  # the engine's interface to the graph; 2: `last_positions` (1: the last position's logits)
_OPSET = 21


def quantize_blocks(weight: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] float32 -> MatMulNBits' 8-bit layout: codes uint8 [N, K/block, block] (zero point 128,
    the operator's default) and float32 scales [N * K/block] (absolute maximum / 127 per block)."""
    rows, cols = weight.shape
    blocks = -(-cols // block)
    padded = np.pad(weight, ((0, 0), (0, blocks * block - cols))).reshape(rows, blocks, block)
    scales = np.abs(padded).max(axis=2) / 127.0
    scales[scales == 0] = 1.0
    codes = np.clip(np.rint(padded / scales[..., None]), -127, 127).astype(np.int16) + 128
    return codes.astype(np.uint8), scales.astype(np.float32).reshape(-1)


def quantize_blocks_4bit(weight: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, K] float32 -> MatMulNBits' asymmetric 4-bit layout: codes uint8 [N, K/block, block/2] (two
    per byte, the first in the low half), float32 scales [N * K/block] ((maximum - minimum) / 15 per
    block) and uint8 zero points [N * ceil(K/block / 2)] (two per byte): value = scale x (code - zero)."""
    rows, cols = weight.shape
    blocks = -(-cols // block)
    padded = np.pad(weight, ((0, 0), (0, blocks * block - cols))).reshape(rows, blocks, block)
    low, high = padded.min(axis=2), padded.max(axis=2)
    scales = (high - low) / 15.0
    scales[scales == 0] = 1.0
    zeros = np.clip(np.rint(-low / scales), 0, 15).astype(np.uint8)
    codes = np.clip(np.rint(padded / scales[..., None]) + zeros[..., None], 0, 15).astype(np.uint8)
    zeros = np.pad(zeros, ((0, 0), (0, blocks % 2)))
    return ((codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8), scales.astype(np.float32).reshape(-1),
            (zeros[:, 0::2] | (zeros[:, 1::2] << 4)).astype(np.uint8).reshape(-1))


def quantize_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Int8 rows with one float32 scale each (the embedding table)."""
    scales = np.abs(matrix).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    return np.rint(matrix / scales[:, None]).astype(np.int8), scales.astype(np.float32)


class _Graph:
    """Nodes and initializers of one decoder graph."""

    def __init__(self, quantization: str) -> None:
        self.quantization = quantization
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], *, contrib: bool = False, **attributes: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, domain="com.microsoft" if contrib else "", **attributes))
        return outputs[0]

    def linear(self, x: str, name: str, weight: np.ndarray, bias: np.ndarray | None = None, *, eight_bits: bool = False) -> str:
        """x @ weight.T (+ bias), `weight` [out, in] as Hugging Face stores it; `eight_bits` keeps
        it in 8 bits in an int4 graph."""
        if self.quantization == "float32":
            out = self.node("MatMul", [x, self.constant(f"{name}.weight", weight.T.astype(np.float32))], [f"{name}.matmul"])
            if bias is None:
                return out
            return self.node("Add", [out, self.constant(f"{name}.bias", bias.astype(np.float32))], [f"{name}.out"])
        bits = 4 if self.quantization == "int4" and not eight_bits else 8
        codes, scales, *zeros = quantize_blocks_4bit(weight) if bits == 4 else quantize_blocks(weight)
        inputs = [x, self.constant(f"{name}.codes", codes), self.constant(f"{name}.scales", scales)]
        if zeros or bias is not None:
            inputs.append(self.constant(f"{name}.zeros", zeros[0]) if zeros else "")
        if bias is not None:
            inputs += ["", self.constant(f"{name}.bias", bias.astype(np.float32))]
        return self.node("MatMulNBits", inputs, [f"{name}.out"], contrib=True, K=weight.shape[1], N=weight.shape[0],
                         bits=bits, block_size=BLOCK, accuracy_level=4)


def _rotary_tables(head_dim: int, theta: float, positions: int) -> tuple[np.ndarray, np.ndarray]:
    inverse = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    angles = np.outer(np.arange(positions, dtype=np.float64), inverse)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def build_graph(model: GGUFModel, quantization: str, progress: Progress = None) -> tuple[Any, np.ndarray]:
    """The ONNX decoder of `model` and its float32 embedding table.

    Inputs: `inputs_embeds` [1, S, hidden], `position_ids` [1, S], `seqlens_k` [1] (past + S - 1),
    `total_sequence_length` (past + S), `last_positions` [1] (P, 1 <= P <= S),
    `past_key_i`/`past_value_i` [1, kv heads, past, head dim].
    Outputs: `logits` [1, P, vocab] of the last P positions, `present_key_i`/`present_value_i`.
    """
    from onnx import TensorProto, helper

    config = model.config
    hidden, heads, kv_heads, head_dim, eps = config.hidden, config.heads, config.kv_heads, config.head_dim, config.norm_eps
    graph = _Graph(quantization)
    cos, sin = _rotary_tables(head_dim, config.rope_theta, config.context_length)
    graph.constant("cos_cache", cos)
    graph.constant("sin_cache", sin)
    inputs = [
        helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, [1, "sequence", hidden]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "sequence"]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        helper.make_tensor_value_info("last_positions", TensorProto.INT64, [1]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "positions", config.vocab_size])]
    x, residual = "inputs_embeds", ""
    for i in range(config.layers):
        if progress is not None:
            progress(f"Layer {i + 1}/{config.layers}")
        w, p = layer_weights(model, i), f"layers.{i}"
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{i}", TensorProto.FLOAT, [1, kv_heads, "past", head_dim]))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}_{i}", TensorProto.FLOAT, [1, kv_heads, "total", head_dim]))
        norm = graph.constant(f"{p}.input_norm", w["input_layernorm.weight"])
        if residual:
            graph.node("SkipSimplifiedLayerNormalization", [x, residual, norm], [f"{p}.normed", "", "", f"{p}.residual"],
                       contrib=True, epsilon=eps)
            residual = f"{p}.residual"
        else:
            graph.node("SimplifiedLayerNormalization", [x, norm], [f"{p}.normed"], axis=-1, epsilon=eps)
            residual = x
        projections = [w[f"self_attn.{name}_proj.weight"] for name in "qkv"]
        biases = [w.get(f"self_attn.{name}_proj.bias") for name in "qkv"]
        qkv = graph.linear(f"{p}.normed", f"{p}.qkv", np.concatenate(projections),
                           None if biases[0] is None else np.concatenate(biases))
        sizes = graph.constant(f"{p}.qkv_sizes", np.array([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], np.int64))
        graph.node("Split", [qkv, sizes], [f"{p}.q", f"{p}.k", f"{p}.v"], axis=-1)
        for name, count in (("q", heads), ("k", kv_heads)):
            graph.node("RotaryEmbedding", [f"{p}.{name}", "position_ids", "cos_cache", "sin_cache"], [f"{p}.{name}_rotated"],
                       contrib=True, num_heads=count, interleaved=0)
        graph.node("GroupQueryAttention",
                   [f"{p}.q_rotated", f"{p}.k_rotated", f"{p}.v", f"past_key_{i}", f"past_value_{i}", "seqlens_k",
                    "total_sequence_length"],
                   [f"{p}.attention", f"present_key_{i}", f"present_value_{i}"], contrib=True,
                   num_heads=heads, kv_num_heads=kv_heads)
        attention = graph.linear(f"{p}.attention", f"{p}.o", w["self_attn.o_proj.weight"])
        norm = graph.constant(f"{p}.post_attention_norm", w["post_attention_layernorm.weight"])
        graph.node("SkipSimplifiedLayerNormalization", [attention, residual, norm],
                   [f"{p}.ffn_in", "", "", f"{p}.ffn_residual"], contrib=True, epsilon=eps)
        residual = f"{p}.ffn_residual"
        gate_up = graph.linear(f"{p}.ffn_in", f"{p}.gate_up", np.concatenate([w["mlp.gate_proj.weight"], w["mlp.up_proj.weight"]]))
        graph.node("Split", [gate_up, graph.constant(f"{p}.ffn_sizes", np.array([config.ffn, config.ffn], np.int64))],
                   [f"{p}.gate", f"{p}.up"], axis=-1)
        graph.node("Sigmoid", [f"{p}.gate"], [f"{p}.gate_sigmoid"])
        graph.node("Mul", [f"{p}.gate", f"{p}.gate_sigmoid"], [f"{p}.gate_silu"])
        graph.node("Mul", [f"{p}.gate_silu", f"{p}.up"], [f"{p}.ffn_hidden"])
        x = graph.linear(f"{p}.ffn_hidden", f"{p}.down", w["mlp.down_proj.weight"])
    graph.node("Neg", ["last_positions"], ["last.start"])
    last = ["last.start", graph.constant("last.end", np.array([1 << 62], np.int64)), graph.constant("last.axis", np.array([1], np.int64))]
    graph.node("Slice", [x, *last], ["last.x"])
    graph.node("Slice", [residual, *last], ["last.residual"])
    graph.node("SkipSimplifiedLayerNormalization", ["last.x", "last.residual", graph.constant("final_norm", model.weight("output_norm.weight"))],
               ["last.normed"], contrib=True, epsilon=eps)
    embedding = model.weight(model.embedding_tensor or "token_embd.weight")
    output = embedding if config.tied else model.weight("output.weight")
    graph.node("Identity", [graph.linear("last.normed", "lm_head", output, eight_bits=True)], ["logits"])
    onnx_graph = helper.make_graph(graph.nodes, f"{config.architecture} decoder", inputs, outputs, graph.initializers)
    onnx_model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", _OPSET), helper.make_opsetid("com.microsoft", 1)])
    onnx_model.ir_version = 10
    return onnx_model, embedding


def convert(model: GGUFModel, out_dir: Path, quantization: str, progress: Progress = None) -> dict[str, Any]:
    """Write the ONNX decoder, its embedding and tokenizer of `model` into the existing directory
    `out_dir`; returns what the metadata should record about the source."""
    from importlib.metadata import version

    import onnx
    from safetensors.numpy import save_file

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"ONNX Runtime decoders are built as {' or '.join(QUANTIZATIONS)}, not {quantization!r}")
    write_tokenizer(model, out_dir, progress)
    if progress is not None:
        progress(f"Building the ONNX Runtime decoder ({quantization})")
    onnx_model, embedding = build_graph(model, quantization, progress)
    onnx.save_model(onnx_model, str(out_dir / GRAPH_FILE), save_as_external_data=True, location=WEIGHTS_FILE)
    rows, scales = quantize_rows(embedding) if quantization != "float32" else (embedding, np.ones(len(embedding), np.float32))
    save_file({"rows": rows, "scales": scales}, str(out_dir / EMBEDDING_FILE))
    return {**source_metadata(model), "runtime": "onnxruntime", "onnx": version("onnx"), "graph_version": GRAPH_VERSION}
