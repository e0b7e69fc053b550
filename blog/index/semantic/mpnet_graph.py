"""all-mpnet-base-v2 as an ONNX graph, written from its safetensors weights with onnx's helpers (no torch).

MPNet's encoder differs from BERT's (graph.py) in four places, as its modeling code has them: no token type
embeddings; positions counted from 2 (its padding index is 1, and a text here is never padded); LayerNorm's
epsilon 1e-5; and every layer's attention scores get a bias by relative position, one table of 32 buckets x
12 heads shared by the twelve layers, looked up by how far and in which direction a key lies from its query.
The bias is written here as one row per relative position (-511 to 511), so the graph only gathers it.
Pooling is the same: the mean of the token vectors under the mask, scaled to unit length (768 numbers).

`quantize()` differs too. Quantized as graph.py quantizes MiniLM, every weight matrix in int8 with one scale
each, the vectors came out at cosine 0.71-0.77 of the fp32 graph's: MPNet's feed-forward output layers
carry outliers one scale cannot hold. With a scale per column, and those twelve matrices left in fp32,
they come out at 0.99 (bench/model_compare.py prints it), for a graph of 266 MB instead of 181.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto

from blog.index.semantic.graph import _Graph, pooled_model

if TYPE_CHECKING:
    from pathlib import Path

HIDDEN = 768
HEADS = 12
LAYERS = 12
EPSILON = 1e-5
POSITIONS = 512  # 514 position rows, less the two below the first real position
BUCKETS, MAX_DISTANCE = 32, 128
FIRST_POSITION = 2  # padding index + 1


def bucket(relative: np.ndarray) -> np.ndarray:
    """Return the bucket of each relative position (key's position minus query's), as MPNet counts them:
    half the buckets for keys before the query, exact up to 8 apart, then logarithmic up to 128."""
    n = -relative
    half = BUCKETS // 2
    out = np.where(n < 0, half, 0)
    n = np.abs(n)
    exact = half // 2
    far = exact + (np.log(np.maximum(n, 1) / exact) / math.log(MAX_DISTANCE / exact) * (half - exact)).astype(np.int64)
    return out + np.where(n < exact, n, np.minimum(far, half - 1))


class _MpnetGraph(_Graph):
    hidden, heads_count, epsilon = HIDDEN, HEADS, EPSILON
    query, key, value = "attention.attn.q", "attention.attn.k", "attention.attn.v"
    attention_out, attention_norm = "attention.attn.o", "attention.LayerNorm"


def build(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Return the sentence-embedding graph for all-mpnet-base-v2's weights (fp32)."""
    g = _MpnetGraph(weights)
    zero, one = g.const(np.array(0, np.int64)), g.const(np.array(1, np.int64))
    count = g.op("Gather", [g.op("Shape", ["input_ids"]), one])
    length = g.op("Unsqueeze", [count, g.const(np.array([0], np.int64))])
    first = g.const(np.array([FIRST_POSITION], np.int64))
    positions = g.op("Slice", [g.weight("embeddings.position_embeddings.weight"), first,
                               g.op("Add", [length, first]), g.const(np.array([0], np.int64))])
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"])
    x = g.norm(g.op("Add", [words, positions]), "embeddings.LayerNorm")
    # The bias by relative position: row (key - query + POSITIONS - 1) of a table made here from the buckets.
    table = weights["encoder.relative_attention_bias.weight"][bucket(np.arange(1 - POSITIONS, POSITIONS))]
    index = g.op("Range", [zero, count, one])
    relative = g.op("Sub", [g.op("Unsqueeze", [index, g.const(np.array([0], np.int64))]),
                            g.op("Unsqueeze", [index, g.const(np.array([1], np.int64))])])
    rows = g.op("Add", [relative, g.const(np.array(POSITIONS - 1, np.int64))])
    bias = g.op("Unsqueeze", [g.op("Transpose", [g.op("Gather", [g.const(table.astype(np.float32), "bias"), rows])],
                                   perm=[2, 0, 1]), g.const(np.array([0], np.int64))])
    keep = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    blocked = g.op("Mul", [g.op("Sub", [g.const(np.array(1, np.float32)), keep]),
                           g.const(np.array(-10000, np.float32))])
    mask = g.op("Add", [g.op("Unsqueeze", [blocked, g.const(np.array([1, 2], np.int64))]), bias])
    for layer in range(LAYERS):
        prefix = f"encoder.layer.{layer}"
        x = g.feed_forward(g.attention(x, mask, prefix), prefix)
    # the nodes get names: quantize() names the ones it leaves in fp32
    model = pooled_model(g, x, keep, "all-mpnet-base-v2")
    for node in model.graph.node:
        node.name = node.output[0]
    return model

def quantize(source: Path, target: Path) -> None:
    """Write an int8 copy of the graph: per-column scales, the feed-forward output matrices kept in fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source), load_external_data=False)
    outliers = [node.name for node in model.graph.node if node.op_type == "MatMul"
                and any(name.startswith("encoder_layer_") and "_output_dense_weight" in name for name in node.input)]
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     per_channel=True, nodes_to_exclude=outliers)
