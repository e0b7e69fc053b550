"""all-MiniLM-L6-v2 as an ONNX graph, written from its safetensors weights with onnx's helpers (no torch).

The graph is BERT's encoder as the model card describes it: word, position and type-0 embeddings with a
LayerNorm; six layers of 12-head self-attention and a GELU feed-forward, each closed by a residual
LayerNorm; then the mean of the token vectors under the attention mask, scaled to unit length. Inputs are
`input_ids` and `attention_mask` (int64, batch x tokens); the output `embedding` is batch x 384.
`quantize()` turns the weight matrices into int8 (onnxruntime's dynamic quantization): about 3x faster
on these CPUs, at a cost docs/search.md measures. `split_words()` then takes the word-embedding table (47 of
the model's 58 MB, float32) out of the graph into a file of its own, which the encoder reads a row at a time:
the graph takes each token's row as its input `words` instead of looking it up (the same floats, so the same
vectors), and no session holds the table.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN = 384
HEADS = 12
LAYERS = 6
EPSILON = 1e-12
OPSET = 17


class _Graph:
    """Collects nodes and initializers; every helper returns the name of the value it made.

    The class attributes are BERT's (all-MiniLM-L6-v2); another encoder of the same shape names its own
    (mpnet_graph.py)."""

    hidden, heads_count, epsilon = HIDDEN, HEADS, EPSILON
    query, key, value = "attention.self.query", "attention.self.key", "attention.self.value"
    attention_out, attention_norm = "attention.output.dense", "attention.output.LayerNorm"

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, key: str, transpose: bool = False) -> str:
        value = self.weights[key]
        return self.const(np.ascontiguousarray(value.T if transpose else value), key.replace(".", "_"))

    def op(self, kind: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(self, x: str, prefix: str) -> str:
        product = self.op("MatMul", [x, self.weight(f"{prefix}.weight", transpose=True)])
        return self.op("Add", [product, self.weight(f"{prefix}.bias")])

    def norm(self, x: str, prefix: str) -> str:
        return self.op("LayerNormalization", [x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")],
                       axis=-1, epsilon=self.epsilon)

    def heads(self, x: str, order: list[int]) -> str:
        split = self.op("Reshape", [x, self.const(np.array([0, 0, self.heads_count, self.hidden // self.heads_count],
                                                           np.int64))])
        return self.op("Transpose", [split], perm=order)

    def attention(self, x: str, mask: str, prefix: str) -> str:
        q = self.heads(self.linear(x, f"{prefix}.{self.query}"), [0, 2, 1, 3])
        k = self.heads(self.linear(x, f"{prefix}.{self.key}"), [0, 2, 3, 1])
        v = self.heads(self.linear(x, f"{prefix}.{self.value}"), [0, 2, 1, 3])
        scores = self.op("Mul", [self.op("MatMul", [q, k]),
                                 self.const(np.array(1 / math.sqrt(self.hidden // self.heads_count), np.float32))])
        weights = self.op("Softmax", [self.op("Add", [scores, mask])], axis=-1)
        context = self.op("Transpose", [self.op("MatMul", [weights, v])], perm=[0, 2, 1, 3])
        merged = self.op("Reshape", [context, self.const(np.array([0, 0, self.hidden], np.int64))])
        out = self.linear(merged, f"{prefix}.{self.attention_out}")
        return self.norm(self.op("Add", [out, x]), f"{prefix}.{self.attention_norm}")

    def gelu(self, x: str) -> str:
        inner = self.op("Erf", [self.op("Div", [x, self.const(np.array(math.sqrt(2), np.float32))])])
        plus = self.op("Add", [inner, self.const(np.array(1, np.float32))])
        return self.op("Mul", [self.op("Mul", [x, plus]), self.const(np.array(0.5, np.float32))])

    def feed_forward(self, x: str, prefix: str) -> str:
        hidden = self.gelu(self.linear(x, f"{prefix}.intermediate.dense"))
        out = self.linear(hidden, f"{prefix}.output.dense")
        return self.norm(self.op("Add", [out, x]), f"{prefix}.output.LayerNorm")


def build(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Return the sentence-embedding graph for all-MiniLM-L6-v2's weights (fp32)."""
    g = _Graph(weights)
    length = g.op("Unsqueeze", [g.op("Gather", [g.op("Shape", ["input_ids"]), g.const(np.array(1, np.int64))]),
                                g.const(np.array([0], np.int64))])
    positions = g.op("Slice", [g.weight("embeddings.position_embeddings.weight"),
                               g.const(np.array([0], np.int64)), length, g.const(np.array([0], np.int64))])
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"])
    type0 = g.const(weights["embeddings.token_type_embeddings.weight"][0].copy(), "type0")
    x = g.norm(g.op("Add", [g.op("Add", [words, positions]), type0]), "embeddings.LayerNorm")
    keep = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    # 0 where a token counts, a large negative number on padding: softmax then ignores the padding
    blocked = g.op("Mul", [g.op("Sub", [g.const(np.array(1, np.float32)), keep]),
                           g.const(np.array(-10000, np.float32))])
    mask = g.op("Unsqueeze", [blocked, g.const(np.array([1, 2], np.int64))])
    for layer in range(LAYERS):
        prefix = f"encoder.layer.{layer}"
        x = g.feed_forward(g.attention(x, mask, prefix), prefix)
    return pooled_model(g, x, keep, "all-MiniLM-L6-v2")


def pooled_model(g: _Graph, x: str, keep: str, name: str) -> onnx.ModelProto:
    """Close an encoder's graph: the mean of the token vectors under the mask, at unit length, as `embedding`."""
    weights3 = g.op("Unsqueeze", [keep, g.const(np.array([2], np.int64))])
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights3]), g.const(np.array([1], np.int64))], keepdims=0)
    counted = g.op("Max", [g.op("ReduceSum", [weights3, g.const(np.array([1], np.int64))], keepdims=0),
                           g.const(np.array(1e-9, np.float32))])
    mean = g.op("Div", [summed, counted])
    length2 = g.op("Max", [g.op("ReduceL2", [mean], axes=[1], keepdims=1),
                           g.const(np.array(1e-12, np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, length2], ["embedding"]))
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", g.hidden])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="engineering-log")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def split_words(source: Path, graph_target: Path, table_target: Path) -> None:
    """Write a graph that takes the tokens' rows of the word table as input `words`, and the table as raw float32.

    The Gather that looked the rows up is removed, and the Shape that read the number of tokens from
    `input_ids` reads it from `words`; every other node and weight is left as it was.
    """
    model = onnx.load(str(source))
    g = model.graph
    gather = next(n for n in g.node if n.op_type == "Gather" and n.input[1] == "input_ids")
    table = next(t for t in g.initializer if t.name == gather.input[0])
    looked_up = gather.output[0]
    numpy_helper.to_array(table).astype("<f4").tofile(str(table_target))
    g.initializer.remove(table)
    g.node.remove(gather)
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in (looked_up, "input_ids"):
                node.input[i] = "words"
    g.input.remove(next(i for i in g.input if i.name == "input_ids"))
    g.input.insert(0, helper.make_tensor_value_info("words", TensorProto.FLOAT, ["batch", "tokens", HIDDEN]))
    onnx.checker.check_model(model)
    onnx.save(model, str(graph_target))


def quantize(source: Path, target: Path) -> None:
    """Write an int8 copy of a graph: weight matrices quantized, activations quantized per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
