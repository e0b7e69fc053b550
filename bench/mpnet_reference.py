"""all-mpnet-base-v2's forward pass in plain numpy, written from its modeling code and independent of the graph.

What bench/model_compare.py checks the ONNX graphs against (blog/index/semantic/mpnet_graph.py): the same
weights, one text at a time, in float64. It shares no code with the graph writer, the relative position
buckets included, so a mistake in one shows as a cosine below 0.9999 against the other.
"""

from __future__ import annotations

import math

import numpy as np

Weights = dict[str, np.ndarray]


def _layer_norm(x: np.ndarray, w: Weights, prefix: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]


def _linear(x: np.ndarray, w: Weights, prefix: str) -> np.ndarray:
    return x @ w[f"{prefix}.weight"].T.astype(np.float64) + w[f"{prefix}.bias"]


def _buckets(length: int, num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """MPNetEncoder.relative_position_bucket over memory_position - context_position, element by element."""
    out = np.zeros((length, length), np.int64)
    half = num_buckets // 2
    exact = half // 2
    for query in range(length):
        for key in range(length):
            n = -(key - query)
            ret = half if n < 0 else 0
            n = abs(n)
            if n < exact:
                ret += n
            else:
                ret += min(exact + int(math.log(n / exact) / math.log(max_distance / exact) * (half - exact)),
                           half - 1)
            out[query, key] = ret
    return out


def embed(w: Weights, ids: list[int]) -> np.ndarray:
    """Return the unit sentence vector of one text's token ids (no padding), in float64."""
    length = len(ids)
    positions = np.arange(length) + 2  # create_position_ids_from_input_ids with padding index 1
    x = w["embeddings.word_embeddings.weight"][ids].astype(np.float64) + w["embeddings.position_embeddings.weight"][
        positions]
    x = _layer_norm(x, w, "embeddings.LayerNorm")
    bias = w["encoder.relative_attention_bias.weight"][_buckets(length)].transpose(2, 0, 1)  # heads x q x k
    heads, size = 12, x.shape[-1] // 12
    for layer in range(12):
        p = f"encoder.layer.{layer}"

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(length, heads, size).transpose(1, 0, 2)

        q, k, v = (split(_linear(x, w, f"{p}.attention.attn.{n}")) for n in "qkv")
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(size) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(length, heads * size)
        x = _layer_norm(_linear(context, w, f"{p}.attention.attn.o") + x, w, f"{p}.attention.LayerNorm")
        hidden = _linear(x, w, f"{p}.intermediate.dense")
        hidden = 0.5 * hidden * (1 + np.vectorize(math.erf)(hidden / math.sqrt(2)))
        x = _layer_norm(_linear(hidden, w, f"{p}.output.dense") + x, w, f"{p}.output.LayerNorm")
    mean = x.mean(0)
    return mean / np.linalg.norm(mean)
