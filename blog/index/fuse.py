"""Reciprocal-rank fusion: one ranking from the lexical and the semantic ones.

A block scores the sum over the rankings of weight / (K + its rank there). Ranks, not scores, are added:
BM25 and cosine are on scales that do not compare. K = 60 is the value of the method's paper. The depth
and the meaning's weight were chosen on the project's own question set only (docs/search.md: depth 60 and
weight 1.5 gave MRR 0.838 where 30 and 1 gave 0.819; K from 30 to 60 ranked alike).
"""

from __future__ import annotations

from collections.abc import Sequence

K = 60
DEPTH = 60  # how far down each ranking counts
MEANING = 1.5  # the semantic ranking's weight beside the lexical one's 1


def fuse(*rankings: list[str], k: int = K, depth: int = DEPTH,
         weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Return (key, fused score) best first; ties keep the first ranking's order."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, key in enumerate(ranking[:depth], 1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
