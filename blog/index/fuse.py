"""One ranking from the lexical and the semantic ones: a convex combination of their normalised scores.

A block scores (1 - w) x its BM25 score / the best BM25 score of the question, plus w x its cosine, scaled
so that the nearest block has 1 and the list's last has 0 (a block missing from a list scores 0 there).
Scores, not ranks, are added: a block the words rank first by a wide margin keeps that margin, where
reciprocal-rank fusion saw only the rank (Bruch et al., "An Analysis of Fusion Functions for Hybrid
Retrieval", 2023). The meaning's weight w depends on the question (`weight`): a question asked in prose
leans on meaning, pasted identifiers and bare words on the words. Depths and weights were chosen on the
project's own question set only (docs/search.md, "What each method was worth").

`rrf` is the reciprocal-rank fusion it replaced, kept for the benches' comparison.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from blog.index.schema import STOP

K = 60
DEPTH = 60  # how far down each ranking counts
MEANING = 1.5  # RRF: the semantic ranking's weight beside the lexical one's 1
PROSE, TERSE = 0.5, 0.3  # convex: the meaning's weight for a question in prose, for bare words
STOPS = 0.25  # prose: at least this share of its words are stop words ("how do I ...")
LEAN = 0.3  # the meaning's extra weight when the best lexical blocks hold none of the question's words
SLANT = 2.0  # how fast that extra weight falls as they hold more: LEAN * (1 - share) ** SLANT
LEAD = 5  # the best lexical blocks whose share of the question's words `weight` reads
COVER = 1.5  # how much the share of the question's words a block holds scales its lexical score (combine)
# A block farther from the question than this cosine is no answer by meaning (docs/search.md): FLOOR when the
# words find nothing either, BESIDE when they find blocks: two signals that agree the log covers the question
# need less of each ("where should a new reader begin?" is 0.224 from its answer; "xyzzyplugh", which no
# block holds, 0.226 from its nearest; the other off-topic questions 0.184 and below).
FLOOR, BESIDE = 0.24, 0.20
_IDENT = re.compile(r"[_/=.:\\]|\d|[a-z][A-Z]|^-|\s-")
_WORD = re.compile(r"[^\W\d_]+")


def rrf(*rankings: list[str], k: int = K, depth: int = DEPTH,
        weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Return (key, fused score) best first by reciprocal rank; ties keep the first ranking's order."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, key in enumerate(ranking[:depth], 1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def weight(text: str, covered: float = 1.0) -> float:
    """Return the meaning's weight for a question: PROSE when it reads as prose, TERSE for bare words.

    Prose has stop words or a question mark; pasted identifiers (paths, flags, digits, snake_case,
    camelCase) and a few bare words do not, and their words are the better guide. `covered` is the largest
    share of the question's words that one of the best lexical blocks holds: when no block has most of
    them, the words are a poor guide and meaning weighs more (up to LEAN more, with none of them; a block
    holding half of them adds a quarter of that, not half: docs/search.md, the third round).
    """
    words = _WORD.findall(text.lower())
    stops = sum(1 for w in words if w in STOP)
    if _IDENT.search(text) or len(words) < 3:
        base = TERSE
    else:
        base = PROSE if stops >= STOPS * len(words) or text.rstrip().endswith("?") else TERSE
    return min(1.0, base + LEAN * (1.0 - covered) ** SLANT)


def floor(words_found: bool) -> float:
    """Return the cosine below which a block is no answer by meaning: lower when the words find blocks too."""
    return BESIDE if words_found else FLOOR


def combine(words: Sequence[tuple[str, float]], meant: Sequence[tuple[str, float]], w: float,
            covered: Mapping[str, float] | None = None, depth: int = DEPTH,
            least: float | None = None) -> list[tuple[str, float]]:
    """Return (key, fused score) best first from (key, BM25) and (key, cosine) lists; ties keep the words' order.

    `covered`: the share of the question's words each lexical block has; a block's normalised BM25 score
    is scaled by it to the power COVER, so that a block with all of them outranks one that has two of
    them twice (BM25's coordination bonus alone is too small to). `least`: the cosine below which a block
    is no answer by meaning (`floor`).
    """
    scores: dict[str, float] = {}
    lexical = words[:depth]
    top = max((s for _, s in lexical), default=0.0)
    for key, s in lexical:
        share = covered.get(key, 1.0) ** COVER if covered is not None else 1.0
        scores[key] = (1 - w) * (s / top if top > 0 else 0.0) * share
    near = meant[:depth]
    least = floor(bool(words)) if least is None else least
    if near:
        high, low = near[0][1], near[-1][1]
        span = high - low
        for key, c in near:
            if c >= least:  # below it a block is no answer by meaning, whatever its rank there
                scores[key] = scores.get(key, 0.0) + w * ((c - low) / span if span > 0 else 1.0)
    return sorted(scores.items(), key=lambda pair: -pair[1])
