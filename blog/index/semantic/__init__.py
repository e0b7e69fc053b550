"""The semantic ranker beside the lexical one: block vectors by meaning, fused into search() by rank.

A process picks where its questions go, once: request workers ask the semantic process over a socket
(`connect`); the stdio MCP server and the benches load the model themselves (`load_local`). With neither,
or when the answer is not there in time, search() ranks by words alone. Nothing here imports onnxruntime
until a model is loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from blog.config import Config

log = logging.getLogger(__name__)

# (build id, question, k) -> [(key, cosine)] best first, or None when that build has no vectors yet
Provider = Callable[[str, str, int], "list[tuple[str, float]] | None"]
_provider: Provider | None = None


def use(provider: Provider | None) -> None:
    """Set where this process's search() asks for the blocks nearest a question (None: words only)."""
    global _provider
    _provider = provider


def provider() -> Provider | None:
    return _provider


def provider_for(build_id: str) -> Provider | None:
    """Return the provider when it is worth asking about this build now (see client.Client.expects)."""
    expects = getattr(_provider, "expects", None)
    return _provider if expects is None or expects(build_id) else None


def connect(config: Config) -> None:
    """Ask the semantic process of this data directory (what a request worker does)."""
    if not config.semantic:
        use(None)
        return
    from blog.index.semantic.client import Client
    from blog.index.semantic.service import socket_path

    use(Client(socket_path(config)))


def load_local(config: Config) -> bool:
    """Load the model into this process and answer from the vectors on disk; say once when it cannot."""
    if not config.semantic:
        use(None)
        return False
    from blog.index.semantic.files import ModelUnavailable, locate

    try:
        files = locate(config.model_dir)
    except ModelUnavailable as exc:
        log.warning("search ranks by words only: %s", exc)
        use(None)
        return False
    from blog.index.semantic.encoder import Encoder
    from blog.index.semantic.nearest import Nearest

    use(Nearest(Encoder(files), config.data_dir / "vectors").nearest)
    return True


def embed(config: Config, build: object, progress: Callable[[int, int], None] | None = None) -> int | None:
    """Write a build's vectors now (the CLI's `blog build`); return how many blocks, None without the model."""
    if not config.semantic:
        return None
    from blog.index.semantic import vectors
    from blog.index.semantic.encoder import Encoder
    from blog.index.semantic.files import ModelUnavailable, locate

    try:
        files = locate(config.model_dir)
    except ModelUnavailable as exc:
        log.warning("search ranks by words only: %s", exc)
        return None
    made = vectors.embed_build(build, config.data_dir / "vectors", Encoder(files, threads=os.cpu_count() or 1),
                               progress)  # type: ignore[arg-type]
    return len(made.keys) if made else None
