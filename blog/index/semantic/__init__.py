"""The semantic ranker beside the lexical one: block vectors by meaning, fused into a search by rank.

Whoever wires a process picks where its questions go, once, and hands the answer (a `Meaning`) to the
process's `Search` (blog/index/search.py): request workers ask the semantic process over a socket
(`connect`); the benches load the model themselves (`load_local`); the stdio MCP server asks a served site's
process when one answers at the socket, and loads the model itself otherwise (`ask_or_load`). With neither
(`WordsOnly`), or when the answer is not there in time, a search ranks by words alone and `why_not` says why.
Nothing here imports onnxruntime until a model is loaded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from blog.config import Config

if TYPE_CHECKING:
    from blog.index.semantic.client import Client

log = logging.getLogger(__name__)

Hits = list[tuple[str, float]]  # (block key, cosine) best first
# What a reader's page may say: short, with no path in it; the log and `blog status` say more.
NO_MODEL = "no usable model is installed"


class Meaning(Protocol):
    """What a search asks for the blocks nearest a question: the semantic process, the model here, or none."""

    def expects(self, build_id: str) -> bool:
        """Tell whether asking about this build is worth it now (a search that does not ask caches its answer)."""
        ...

    def why_not(self, build_id: str) -> str | None:
        """Say in plain words why meaning does not rank a question about this build now (None: it does)."""
        ...

    def __call__(self, build_id: str, question: str, k: int) -> Hits | None:
        """Return the k blocks nearest the question, or None when there is no answer (yet)."""
        ...


class WordsOnly:
    """No ranker by meaning: every question is ranked by words, and `why` says why (None: switched off)."""

    def __init__(self, why: str | None = None) -> None:
        self.why = why

    def expects(self, build_id: str) -> bool:
        return False

    def why_not(self, build_id: str) -> str | None:
        return self.why

    def __call__(self, build_id: str, question: str, k: int) -> Hits | None:
        return None


def connect(config: Config) -> Meaning:
    """Return the semantic process of this data directory to ask (what a request worker does)."""
    if not config.semantic:
        return WordsOnly()
    from blog.index.semantic.client import Client
    from blog.index.semantic.wire import socket_path

    return Client(socket_path(config))


def ask_or_load(config: Config) -> tuple[Meaning, str]:
    """Ask the site's semantic process when one answers at its socket, else load the model here; say which.

    The socket file alone proves nothing: a site stopped by SIGKILL leaves it behind, and asking it then
    fails on every question. So it is probed (connected to), never assumed.
    """
    from blog.index.semantic.wire import listening, socket_path

    path = socket_path(config)
    if not config.semantic:
        return WordsOnly(), "search ranks by words only: the semantic ranker is off (semantic = false)"
    if listening(path):
        from blog.index.semantic.client import Client

        return SiteOrHere(config, Client(path)), \
            f"search ranks by words and meaning, asking the site's semantic process at {path}"
    left = f" ({path} is left from a stopped site: nothing answers there)" if path.exists() else ""
    here = load_local(config)
    if not isinstance(here, WordsOnly):
        return here, f"search ranks by words and meaning, with the model loaded in this process{left}"
    return here, f"search ranks by words only: {here.why} (see above){left}"


class SiteOrHere:
    """The stdio server's ranker: the site's semantic process while it runs, the model here once it is gone.

    A site stopped while `blog mcp` runs takes its process with it; from then on the model is loaded here
    (once) and questions are ranked here, over the same vectors, until the site's process answers again.
    A process that is only slow or stopped is waited for, as a worker would: it holds the model already.
    """

    def __init__(self, config: Config, asker: Client) -> None:
        self.config, self.asker = config, asker
        self.here: Meaning | None = None
        self._tried = False  # the model is loaded here at most once (its absence is said once too)
        self._loading = threading.Lock()

    def _here(self) -> Meaning | None:
        if self.here is None and not self._tried and self.asker.gone:
            with self._loading:
                if not self._tried:
                    self._tried = True
                    found = load_local(self.config)
                    if not isinstance(found, WordsOnly):
                        self.here = found
                        log.warning("the site's semantic process is gone: the model is loaded here, and "
                                    "search ranks by words and meaning again")
        return self.here

    def expects(self, build_id: str) -> bool:
        return self.asker.expects(build_id) or self._here() is not None

    def why_not(self, build_id: str) -> str | None:
        if self.asker.expects(build_id) or self.here is None:
            return self.asker.why_not(build_id)
        return self.here.why_not(build_id)

    def __call__(self, build_id: str, question: str, k: int) -> Hits | None:
        if self.asker.expects(build_id):
            hits = self.asker(build_id, question, k)
            if hits is not None or not self.asker.gone:
                return hits
        here = self._here()
        return here(build_id, question, k) if here is not None else None


def load_local(config: Config) -> Meaning:
    """Load the model into this process to answer from the vectors on disk; say once when it cannot."""
    if not config.semantic:
        return WordsOnly()
    from blog.index.semantic.weights import ModelUnavailable, locate

    try:
        files = locate(config.model_dir)
    except ModelUnavailable as exc:
        log.warning("search ranks by words only: %s", exc)
        return WordsOnly(NO_MODEL)
    from blog.index.semantic.encoder import Encoder
    from blog.index.semantic.nearest import Nearest

    # One thread, as the semantic process's questions have: the same vectors and the same arithmetic, so
    # `blog mcp` here ranks as the served site does.
    return Nearest(Encoder(files, threads=1), config.data_dir / "vectors")


def embed(config: Config, build: object, progress: Callable[[int, int], None] | None = None) -> int | None:
    """Write a build's vectors now (the CLI's `blog build`); return how many blocks, None without the model."""
    if not config.semantic:
        return None
    from blog.index.semantic import vectors
    from blog.index.semantic.encoder import Encoder
    from blog.index.semantic.weights import ModelUnavailable, locate

    try:
        files = locate(config.model_dir)
    except ModelUnavailable as exc:
        log.warning("search ranks by words only: %s", exc)
        return None
    made = vectors.embed_build(build, config.data_dir / "vectors", Encoder(files, threads=os.cpu_count() or 1),
                               progress)  # type: ignore[arg-type]
    return len(made.keys) if made else None
