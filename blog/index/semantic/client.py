"""A request worker's side of the semantic process: one question over a Unix socket, with a deadline.

Workers hold neither the model nor the vectors (about 75 MB and 44 MB at 1,000 entries): the semantic
process holds them once. A question the process cannot answer in time is ranked lexically.

One breaker per process, shared by its threads: the first question that finds the process hung or gone
costs its reader the deadline once; the questions already waiting give up with it, and the ones after it
are not asked at all. While the process is out, one background thread asks it how it is (a status, which
needs no model) every PROBE_EVERY seconds, and the first answer lets questions through again. So a
stopped process costs each reader at most the deadline, once, instead of once per queued request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from blog.index.semantic import wire

log = logging.getLogger(__name__)

DEADLINE = 0.5  # seconds for the whole exchange; past it the answer is lexical
PROBE_EVERY = 0.25  # seconds between status probes while the process is out
BACK_OFF = 1.0  # seconds a build the process has no vectors for (yet) is not asked about again


class Client:
    """Asks the semantic process at a socket path for the blocks nearest a question."""

    def __init__(self, path: Path, deadline: float = DEADLINE) -> None:
        self.path = path
        self.deadline = deadline
        self._out: str | None = None  # why the process is not asked now (None: it is)
        self.gone = False  # the last failure found nothing listening (no process), not a slow one
        self._prober: tuple[int, threading.Thread] | None = None  # (pid, thread): threads do not survive a fork
        self._lock = threading.Lock()
        self._unready: dict[str, tuple[float, str]] = {}  # build id -> until when not to ask, and why

    def expects(self, build_id: str) -> bool:
        """Tell whether asking is worth it now: the process answers, and has vectors for the build.

        A Search caches an answer by words alone only when it did not ask, so while the process is out or
        still embedding, repeated questions are answered from the cache instead of each paying a connect.
        """
        return self._out is None and time.monotonic() >= self._unready.get(build_id, (0.0, ""))[0]

    def why_not(self, build_id: str) -> str | None:
        """Say why a question about this build is not ranked by meaning now (None: it is)."""
        if self._out is not None:
            return "the site's semantic process is not answering"  # the log and `blog status` say more
        until, why = self._unready.get(build_id, (0.0, ""))
        return why if time.monotonic() < until else None

    def __call__(self, build_id: str, question: str, k: int) -> list[tuple[str, float]] | None:
        try:
            answer = wire.exchange(self.path, {"build": build_id, "q": question, "k": k}, self.deadline,
                                   give_up=lambda: self._out is not None)
        except wire.Failed as exc:
            self._trip(str(exc), exc.gone)
            return None
        hits = answer.get("hits")
        if not isinstance(hits, list):
            if len(self._unready) > 16:
                self._unready.clear()
            why = str(answer.get("why") or "the vectors of this build are still being made")
            self._unready[build_id] = (time.monotonic() + BACK_OFF, why)
            return None
        try:
            return [(str(key), float(score)) for key, score in hits]
        except (TypeError, ValueError):
            self._trip("its answer was garbled")
            return None

    nearest = __call__

    def _trip(self, why: str, gone: bool = False) -> None:
        """Stop asking until a probe finds the process answering again; start that probe once."""
        with self._lock:
            if self._out is None or gone:  # a question that merely gave up with another says nothing new
                self.gone = gone
            if self._out is None:
                log.warning("the semantic process is out (%s): search ranks by words until it answers again", why)
            self._out = why
            pid = os.getpid()
            if self._prober is not None and self._prober[0] == pid and self._prober[1].is_alive():
                return
            thread = threading.Thread(target=self._probe, name="semantic-probe", daemon=True)
            self._prober = (pid, thread)
            thread.start()

    def _probe(self) -> None:
        while True:
            time.sleep(PROBE_EVERY)
            try:
                wire.status(self.path, self.deadline)
            except wire.Failed as exc:
                self._out, self.gone = str(exc), exc.gone
                continue
            with self._lock:
                self._out, self.gone = None, False
                self._prober = None
            log.info("the semantic process answers again; search ranks by words and meaning")
            return
