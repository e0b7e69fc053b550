"""Ways to serve a site that lies about its history, for the verifier to catch.

Each tamper publishes a build into the served site's data directory from a changed copy of its content, as
modified software would: the honest checks (`blog check`, the chain against the lock, the signing key's own
address) are switched off in this process only, the way an intruder or a second backend would skip them. The
served site's workers follow the new build like any other. `restore()` publishes the honest content again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from blog import pipeline
from blog.config import Config
from blog.honesty import annotate, revlog
from blog.honesty import chain as chains
from blog.honesty.lock import read_lock
from blog.tor import identity, keys
from tests.pictures import plot_png

REVISED = "gunicorn-control-socket-and-keep-alive"  # the bundled log's entry with two revisions
PICTURE = "log/2026-10-25-rack-pictures/plot.png"
PICTURES = "rack-pictures"


@contextlib.contextmanager
def unchecked() -> Iterator[pytest.MonkeyPatch]:
    """Publish as software that skips its own honesty checks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(annotate, "problems", lambda *args, **kwargs: [])
        patch.setattr(revlog, "lock_problems", lambda *args, **kwargs: [])
        patch.setattr(revlog, "_served_problems", lambda *args, **kwargs: [])
        yield patch


def _copy(config: Config, scratch: Path) -> Path:
    target = scratch / "content"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(config.content_dir, target)
    return target


def _edit_lock(content: Path, change: Callable[[list[dict]], None]) -> None:
    path = content / "published.lock"
    data = json.loads(path.read_text())
    change(data["entries"][REVISED])
    path.write_text(json.dumps(data, indent=1))


def _entry_file(content: Path, slug: str) -> Path:
    return next(p for p in (content / "log").rglob("*.md") if slug in str(p))


def edit_old_body(content: Path) -> None:
    def change(items: list[dict]) -> None:
        items[0]["body"] = items[0]["body"].replace("the", "a", 1)

    _edit_lock(content, change)


def drop_revision(content: Path) -> None:
    _edit_lock(content, lambda items: items.pop(0))


def reorder_revisions(content: Path) -> None:
    _edit_lock(content, lambda items: items.reverse())


def change_body(content: Path) -> None:
    path = _entry_file(content, "tor-verify-config")
    text = path.read_text()
    head, sep, body = text.partition("\n---\n")
    path.write_text(head + sep + body.replace(" the ", " a ", 1))


def swap_picture(content: Path) -> None:
    plot_png(content / PICTURE, colour=(200, 200, 30))


TAMPERS: dict[str, Callable[[Path], None]] = {
    "edit an old revision's body in the lock": edit_old_body,
    "drop a revision": drop_revision,
    "reorder two revisions": reorder_revisions,
    "serve a changed body without an update": change_body,
    "swap one linked picture": swap_picture,
}
# What `blog verify` must say for each: a line naming the entry and the revision.
CAUGHT: dict[str, str] = {
    "edit an old revision's body in the lock": f"{REVISED} revision 1: the served text hashes to",
    "drop a revision": f"{REVISED} revision 1: the served text hashes to",
    "reorder two revisions": f"{REVISED} revision 1: the served text hashes to",
    "serve a changed body without an update": "tor-verify-config revision 2: the site shows it, but the log "
                                              "records 1 revision(s)",
    "swap one linked picture": f"{PICTURES} revision 1: linked file {PICTURE} hashes to",
    "serve the log signed by another onion key": "the head's signature is not",
}


def publish_tampered(config: Config, scratch: Path, name: str) -> None:
    """Publish the served site's content changed by one tamper, with the honest checks off."""
    content = _copy(config, scratch)
    with unchecked() as patch:
        if name == "serve the log signed by another onion key":
            other = scratch / "other-key"
            keys.write_key(other, keys.generate_key())
            real = identity.address_of(keys.read_key(config.onion_key_path))
            # Another key signs, and the log claims the site's own address: only the signature tells.
            patch.setattr(identity, "address_of", lambda key: real)
            pipeline.publish(config.replace(content_dir=content, onion_key_path=other), force=True)
            return
        TAMPERS[name](content)
        pipeline.publish(config.replace(content_dir=content), force=True)


def rewrite_history(config: Config, scratch: Path) -> str:
    """Rewrite an old revision in the lock AND the chain consistently, signed by the real key; return the old head.

    Honest software accepts it (the lock and the chain agree): only a reader who kept the old head can tell.
    """
    old = chains.head_of(chains.read_chain(config.content_dir) or ())
    content = _copy(config, scratch)
    edit_old_body(content)
    path = content / "published.lock"
    data = json.loads(path.read_text())
    first = data["entries"][REVISED][0]
    first["hash"] = hashlib.sha256(first["body"].encode()).hexdigest()
    path.write_text(json.dumps(data, indent=1))
    locked = read_lock(content)
    served = {r.slug: r.served for r in chains.read_chain(config.content_dir) or ()}
    chains.write_chain(content, chains.from_lock(locked, lambda slug: served.get(slug, {})))
    pipeline.publish(config.replace(content_dir=content), force=True)
    return old


def restore(config: Config) -> None:
    """Publish the honest content again."""
    pipeline.publish(config, force=True)
