"""The nearest blocks to a question by meaning, over one build's vectors (cosine of unit vectors)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from blog.index.semantic import vectors
from blog.index.semantic.encoder import Encoder

LOADED = 2  # builds whose vectors are held at once: the current one, and the last during a switch
# Pseudo-relevance feedback for questions of six words and more: the question's vector moves toward the mean
# of its three nearest blocks (weight 0.6) and is asked again. Chosen on the own question set (docs/search.md,
# "What each method was worth"): one question more in the top 5, the questions sharing no word with their
# answer 0.53 -> 0.60 recall@5.
# A question already this near a block (cosine) is not moved: moving it toward its neighbours only blurs
# what it found (0.5 and 0.6 measured the same; one question more in the top 5 than moving every question).
FEEDBACK_WORDS, FEEDBACK_BLOCKS, FEEDBACK_WEIGHT, FEEDBACK_BELOW = 6, 3, 0.6, 0.55


class Nearest:
    """Answers `nearest(build_id, question, k)` with (key, cosine) pairs, best first; None when not ready.

    The model loaded in this process: what `blog mcp` and the benches rank with when no semantic process runs.
    """

    def __init__(self, encoder: Encoder, root: Path) -> None:
        self.encoder = encoder
        self.root = root
        self._sets: OrderedDict[str, vectors.VectorSet] = OrderedDict()
        self._lock = threading.Lock()

    def vectors_for(self, build_id: str) -> vectors.VectorSet | None:
        with self._lock:
            found = self._sets.get(build_id)
            if found is not None:
                self._sets.move_to_end(build_id)
                return found
        found = vectors.load(self.root, build_id, self.encoder.files.model_id)
        if found is not None:
            with self._lock:
                self._sets[build_id] = found
                while len(self._sets) > LOADED:
                    self._sets.popitem(last=False)
        return found

    def nearest(self, build_id: str, question: str, k: int) -> list[tuple[str, float]] | None:
        found = self.vectors_for(build_id)
        if found is None or not found.keys:
            return None
        query = self.encoder.encode([question])[0]
        scores = found.matrix @ query
        if len(question.split()) >= FEEDBACK_WORDS and len(scores) > FEEDBACK_BLOCKS and \
                scores.max() < FEEDBACK_BELOW:
            scores = _feedback(found.matrix, query, scores)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(found.keys[i], float(scores[i])) for i in top]

    __call__ = nearest  # a semantic.Meaning for a Search (blog/index/search.py)

    def expects(self, build_id: str) -> bool:
        """Always worth asking: the model is here, and a build without vectors answers None at once."""
        return True

    def why_not(self, build_id: str) -> str | None:
        """Say why a question about this build is not ranked by meaning (None: it is)."""
        if self.vectors_for(build_id) is None:
            return "this build has no vectors yet (`blog build` makes them)"
        return None


def _feedback(matrix: np.ndarray, query: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Return the cosines of the question moved toward its nearest blocks, scaled so the best stays the first
    answer's best: a floor on how near the nearest block is (blog/index/fuse.py) reads the same."""
    nearest = np.argpartition(-scores, FEEDBACK_BLOCKS - 1)[:FEEDBACK_BLOCKS]
    moved = query + FEEDBACK_WEIGHT * matrix[nearest].mean(axis=0)
    moved /= np.linalg.norm(moved)
    again = matrix @ moved
    best = float(again.max())
    return again * (float(scores.max()) / best) if best > 0 else scores
