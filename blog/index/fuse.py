"""Reciprocal-rank fusion: one ranking from the lexical and the semantic ones.

A block's score is the sum over the rankings of 1 / (K + its rank there). Ranks, not scores, are added:
BM25 and cosine are on scales that do not compare. K = 60 is the value of the method's paper; on the
project's own question set K from 10 to 60 ranked alike (docs/search.md).
"""

from __future__ import annotations

K = 60
DEPTH = 30  # how far down each ranking counts


def fuse(*rankings: list[str], k: int = K, depth: int = DEPTH) -> list[tuple[str, float]]:
    """Return (key, fused score) best first; ties keep the first ranking's order."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking[:depth], 1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
