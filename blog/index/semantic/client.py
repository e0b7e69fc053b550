"""A request worker's side of the semantic process: one question over a Unix socket, with a deadline.

Workers hold neither the model nor the vectors (about 75 MB and 44 MB at 1,000 entries): the semantic
process holds them once. A question the process cannot answer in time is ranked lexically.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

DEADLINE = 0.5  # seconds for the whole exchange; past it the answer is lexical
MAX_ANSWER = 64 * 1024  # bytes: k keys and scores
BACK_OFF = 1.0  # seconds a worker ranks by words alone after the process was down or had no vectors


class Client:
    """Asks the semantic process at a socket path for the blocks nearest a question."""

    def __init__(self, path: Path, deadline: float = DEADLINE) -> None:
        self.path = path
        self.deadline = deadline
        self._quiet_until: dict[str, float] = {}  # build id -> until when not to ask (down, or no vectors yet)

    def expects(self, build_id: str) -> bool:
        """Tell whether asking is worth it now: not within BACK_OFF of a failed or unready answer.

        search() caches an answer by words alone only when it did not ask, so while the process is down or
        still embedding, repeated questions are answered from the cache instead of each paying a connect.
        """
        return time.monotonic() >= self._quiet_until.get(build_id, 0.0)

    def __call__(self, build_id: str, question: str, k: int) -> list[tuple[str, float]] | None:
        found = self._ask(build_id, question, k)
        if found is None:
            if len(self._quiet_until) > 16:
                self._quiet_until.clear()
            self._quiet_until[build_id] = time.monotonic() + BACK_OFF
        return found

    nearest = __call__

    def _ask(self, build_id: str, question: str, k: int) -> list[tuple[str, float]] | None:
        request = json.dumps({"build": build_id, "q": question, "k": k}).encode() + b"\n"
        end = time.monotonic() + self.deadline
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.deadline)
                conn.connect(str(self.path))
                conn.sendall(request)
                chunks, size = [], 0
                while not chunks or not chunks[-1].endswith(b"\n"):
                    left = end - time.monotonic()
                    if left <= 0:
                        return None
                    conn.settimeout(left)
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_ANSWER:
                        return None
            answer = json.loads(b"".join(chunks) or b"{}")
        except (OSError, ValueError):
            return None
        hits = answer.get("hits")
        if not isinstance(hits, list):
            return None
        return [(str(key), float(score)) for key, score in hits]
