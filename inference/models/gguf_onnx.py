"""GGUF (`llama`, `qwen2`) -> ONNX Runtime decoder directory with numpy and `onnx` alone: no torch.

The graph is written with ONNX Runtime's CPU contrib operators: for int8, weights in int8 with a
float32 scale per output and the activations quantized to 8 bits on the fly, so a prompt's many rows
run on the CPU's int8 dot products (half the time of `MatMulNBits`' 8-bit path, bench/RESULTS.md):
one scale for a pass's rows (`DynamicQuantizeMatMul`, one operator) where that keeps their precision,
its rows scaled to one range first for the feed-forward's down matrix, whose input has the rare huge rows;
`MatMulNBits` for int4 (the layers' matrices in 4 bits with a scale and a zero point per block of
32, the output matrix in 8), plain `MatMul` for float32, `GroupQueryAttention` taking each
layer's queries, keys and values packed, rotating them by explicit position ids, and taking and
returning its key/value cache, and the fused RMS norms.
The cache is an input and an output (the engine, inference/engines/onnx_engine.py, binds both to
one buffer that a pass extends in place), so the engine keeps it between requests and continues any
earlier prompt from its longest common prefix; CTranslate2 can only reuse a prompt that matches exactly.

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
GRAPH_VERSION = 6  # the graph's build; 2: `last_positions` (1: the last position's logits); 3: int8 inputs quantized on the fly;
# 4: one int8 product node per matrix; 5: one scale per pass but for the down matrix; 6: down's rows scaled to one range, no `If`
_OPSET = 21


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
    """Int8 rows with one float32 scale each (absolute maximum / 127): the embedding table, and the
    8-bit matrices (one scale per output)."""
    scales = np.abs(matrix).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    return np.rint(matrix / scales[:, None]).astype(np.int8), scales.astype(np.float32)


class _Graph:
    """Nodes and initializers of one decoder graph."""

    def __init__(self, quantization: str) -> None:
        self.quantization = quantization
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.shared_names: set[str] = set()

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def shared(self, name: str, value: np.ndarray) -> str:
        """A constant that several nodes use, added once."""
        if name not in self.shared_names:
            self.shared_names.add(self.constant(name, value))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], *, contrib: bool = False, **attributes: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, domain="com.microsoft" if contrib else "", **attributes))
        return outputs[0]

    def linear(self, x: str, name: str, weight: np.ndarray, bias: np.ndarray | None = None, *, eight_bits: bool = False,
               rows_apart: bool = False) -> str:
        """x @ weight.T (+ bias), `weight` [out, in] as Hugging Face stores it; `eight_bits` keeps
        it in 8 bits in an int4 graph; in 8 bits, `rows_apart` gives each row of a pass over several
        its own input scale."""
        bias_input = [] if bias is None else [self.constant(f"{name}.bias", bias.astype(np.float32))]
        if self.quantization == "float32":
            out = self.node("MatMul", [x, self.constant(f"{name}.weight", weight.T.astype(np.float32))], [f"{name}.matmul"])
            return self.node("Add", [out, *bias_input], [f"{name}.out"]) if bias_input else out
        if self.quantization == "int8" or eight_bits:
            return (self._linear_8bit_rows if rows_apart else self._linear_8bit)(x, name, weight, bias_input)
        codes, scales, zeros = quantize_blocks_4bit(weight)
        inputs = [x, self.constant(f"{name}.codes", codes), self.constant(f"{name}.scales", scales), self.constant(f"{name}.zeros", zeros)]
        return self.node("MatMulNBits", inputs + (["", *bias_input] if bias_input else []), [f"{name}.out"], contrib=True,
                         K=weight.shape[1], N=weight.shape[0], bits=4, block_size=BLOCK, accuracy_level=4)

    def _linear_8bit(self, x: str, name: str, weight: np.ndarray, bias_input: list[str], out: str = "") -> str:
        """x @ weight.T with int8 weights (a scale per output) and `x` quantized to 8 bits on the fly
        with one scale for the pass (`DynamicQuantizeMatMul`: one operator, its weights packed once),
        into `out` (`<name>.out` by default)."""
        codes, scales = quantize_rows(weight)  # a row of `weight` is a column of the product
        return self.node("DynamicQuantizeMatMul", [x, self.constant(f"{name}.codes", codes.T), self.constant(f"{name}.scales", scales),
                                                   *(["", *bias_input] if bias_input else [])], [out or f"{name}.out"], contrib=True)

    def _linear_8bit_rows(self, x: str, name: str, weight: np.ndarray, bias_input: list[str]) -> str:
        """`_linear_8bit` where one row's large values must not cost the others of a pass their
        precision: each row is divided by its largest magnitude before the one-scale product and
        multiplied by it after, so every row of a pass spans the same range (a scale per row, in
        five plain operators; the `If` of graph version 5 cost about 40 us a pass)."""
        largest = self.node("ReduceMax", [self.node("Abs", [x], [f"{name}.abs"]), self.shared("last_axis", np.array([-1], np.int64))],
                            [f"{name}.largest0"], keepdims=1)
        largest = self.node("Max", [largest, self.shared("smallest_largest", np.array(1e-12, np.float32))], [f"{name}.largest"])
        product = self._linear_8bit(self.node("Div", [x, largest], [f"{name}.rows_unit"]), name, weight, [], f"{name}.product")
        out = self.node("Mul", [product, largest], [f"{name}.scaled"])
        return self.node("Add", [out, *bias_input], [f"{name}.out"]) if bias_input else out


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
        graph.node("GroupQueryAttention",  # the queries, keys and values packed in one input, rotated inside
                   [qkv, "", "", f"past_key_{i}", f"past_value_{i}", "seqlens_k", "total_sequence_length", "cos_cache", "sin_cache",
                    "position_ids"],
                   [f"{p}.attention", f"present_key_{i}", f"present_value_{i}"], contrib=True,
                   num_heads=heads, kv_num_heads=kv_heads, do_rotary=1, rotary_interleaved=0)
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
        x = graph.linear(f"{p}.ffn_hidden", f"{p}.down", w["mlp.down_proj.weight"], rows_apart=True)
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
