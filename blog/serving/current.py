"""What a web worker or the stdio MCP server serves: the current build, swapped in when a new one is published."""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

from blog import builds
from blog.config import Config
from blog.content import utcnow

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds between looks at the `current` pointer


@dataclass
class Snapshot:
    """A build plus what a worker derives from it once."""

    build: builds.Build
    epoch: int  # changes when a scheduled entry goes live, so cached lists are rebuilt


class SiteState:
    """Hold the current build for one worker and reload it when `current` changes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._checked = 0.0
        self._mtime = 0
        self._snapshot: Snapshot | None = None
        self._onion_checked = 0.0
        self._onion = config.onion_address

    def start(self) -> None:
        """Load the current build, which the builder (blog/builder.py) or `blog build` has made.

        With gunicorn's `--preload` the app is created in the master before the master's first build, so
        a missing build is loaded at the first request instead (`snapshot` says so if there is none then).
        """
        build = builds.load_current(self.config.builds_dir)
        if build is None:
            log.info("no build in %s yet; the first request loads it", self.config.builds_dir)
            return
        self._install(build)

    def _install(self, build: builds.Build) -> None:
        replaced = self._snapshot is not None
        self._mtime = builds.pointer_mtime(self.config.builds_dir)
        self._snapshot = Snapshot(build, self._epoch(build))
        freeze_heap(replaced=replaced)

    def _epoch(self, build: builds.Build) -> int:
        return len(build.site.published(utcnow()))

    @property
    def snapshot(self) -> Snapshot:
        """Return the snapshot to serve, after at most one cheap check per second."""
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY or self._snapshot is None:
            with self._lock:
                if now - self._checked >= CHECK_EVERY or self._snapshot is None:
                    self._checked = now
                    self._refresh()
        if self._snapshot is None:
            raise builds.BuildError(f"there is no build in {self.config.builds_dir}: run `blog build` "
                                    "(gunicorn's master makes one before its workers start)")
        return self._snapshot

    def _refresh(self) -> None:
        mtime = builds.pointer_mtime(self.config.builds_dir)
        current = self._snapshot
        if current is not None and mtime == self._mtime:
            epoch = self._epoch(current.build)
            if epoch != current.epoch:
                self._snapshot = Snapshot(current.build, epoch)
            return
        try:
            build = builds.load_current(self.config.builds_dir)
        except builds.BuildError as exc:
            log.error("keeping build %s: %s", current.build.id if current else "-", exc)
            self._mtime = mtime
            return
        if build is not None:
            log.info("now serving build %s", build.id)
            self._install(build)

    @property
    def onion_address(self) -> str:
        """Return the onion address: configured, or written by the tor room after publishing."""
        if self.config.onion_address:
            return self.config.onion_address
        now = time.monotonic()
        if now - self._onion_checked >= CHECK_EVERY:
            self._onion_checked = now
            try:
                # Written next to the key by the tor room, like tor's own HiddenServiceDir/hostname.
                name = (self.config.onion_key_path.parent / "hostname").read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                name = ""
            self._onion = name if not name or name.endswith(".onion") else f"{name}.onion"
        return self._onion


def freeze_heap(replaced: bool = False) -> None:
    """Keep the collector off what a build holds: it lives until the next build and has no garbage.

    `replaced`: a build was frozen before and has just been replaced, so its cycles are garbage now.
    """
    # Without this, every full collection walks the whole site (hundreds of MB with a large log) while a
    # request waits (an interleaved A/B put the feed at ~45 % of bare WSGI before, ~100 % after). Unfreezing
    # lets one collection free the previous build's cycles before the new heap is set aside; but it also
    # writes to every object the gunicorn master froze before forking (blog/worker_imports.py), which copies
    # those shared pages into this worker, so it is done only when there is an old build to free.
    if replaced:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
