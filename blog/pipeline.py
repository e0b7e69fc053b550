"""The publishing pipeline: check, render, honesty, index and switch in a new build, one process at a time."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from blog import builds
from blog.config import Config
from blog.content import utcnow
from blog.honesty import annotate, revlog
from blog.index.store import is_usable, update_index

log = logging.getLogger(__name__)


@contextmanager
def _lock(data_dir: Path) -> Iterator[None]:
    """Serialise builds between processes (gunicorn workers, `blog build`, a cron job)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    with open(data_dir / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_stale(config: Config) -> bool:
    """Tell whether the content differs from what the current build was made of."""
    pointer = builds.current_pointer(config.builds_dir)
    return pointer is None or pointer["build"] != builds.content_fingerprint(config.content_dir)


def publish(config: Config, force: bool = False) -> builds.Build:
    """Build the content into a new current build; raise ContentProblems and keep the old one on errors."""
    with _lock(config.data_dir):
        try:
            previous = builds.load_current(config.builds_dir)
        except builds.BuildError as exc:
            log.warning("ignoring the previous build: %s", exc)
            previous = None
        fingerprint = builds.content_fingerprint(config.content_dir)
        if previous and previous.id == fingerprint and not force and is_usable(previous.index_dir):
            return previous
        build = builds.make_build(config.content_dir, config.builds_dir, previous, build_id=fingerprint)
        annotate.annotate(build, config.content_dir, utcnow())  # refuses silent edits of published entries
        revlog.attach(build, config.content_dir, config.onion_key_path)  # the chain checked, its head signed
        builds.save(build)
        build.index_dir = update_index(build, config.data_dir / "index", previous)
        builds.switch(config.builds_dir, build)
        log.info("build %s is current: %d entries, %d pages", build.id, len(build.site.entries),
                 len(build.site.pages))
        return build


def ensure_current(config: Config) -> builds.Build:
    """Return the current build, publishing first when there is none or the content changed."""
    if is_stale(config):
        return publish(config)
    current = builds.load_current(config.builds_dir)
    if current is None or not is_usable(current.index_dir):
        return publish(config, force=True)
    if revlog.needs_signing(current, config.onion_key_path):  # a key created, imported or removed since
        return publish(config, force=True)
    return current
