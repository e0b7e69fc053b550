"""The revision log a build publishes: the chain's records, its head signed with the onion key, what is served.

Signing happens here, in the process that publishes (the builder, `blog build`): request workers only read the
signed log from the build, never the key.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

from blog.builds import Build, LogStore
from blog.content import ContentError, ContentProblems, Entry, Site, utcnow
from blog.files import FileSet, check_files
from blog.files.links import content_path
from blog.honesty import HonestyError
from blog.honesty.chain import (
    CHAIN_NAME,
    Record,
    Served,
    canonical,
    chain_path,
    from_lock,
    head_of,
    lock_problems,
    read_chain,
    write_chain,
)
from blog.honesty.lock import read_lock
from blog.honesty.revlog_view import RevisionLog, ServedRevision, SignedHead

log = logging.getLogger(__name__)

STATEMENT = b"engineering-log revision log head v1\n"  # domain separation: nothing tor signs starts so


def statement(address: str, head: str, size: int) -> bytes:
    """Return the bytes the onion key signs: the prefix, then {address, head, size} as canonical JSON."""
    name = address.strip().lower().removesuffix(".onion")
    return STATEMENT + canonical({"address": f"{name}.onion", "head": head, "size": size})


def served_digests(files: FileSet, paths: list[str]) -> dict[str, str]:
    """Return path -> SHA-256 of the cleaned bytes a build will serve (in memory, or an earlier build's file)."""
    found: dict[str, str] = {}
    for path in paths:
        asset = files.assets.get(path)
        if asset is None:
            continue
        payload = files.payloads.get(asset.stored)  # held until the build is written
        if isinstance(payload, Path):
            with payload.open("rb") as handle:
                found[path] = hashlib.file_digest(handle, "sha256").hexdigest()
        elif payload is not None:
            found[path] = hashlib.sha256(payload).hexdigest()
    return found


def key_address(key_path: Path) -> tuple[bytes | None, str]:
    """Return the onion key and its address, or (None, why there is none, as readers may be told); never creates one."""
    if not key_path.exists():
        log.info("no onion key at %s: the revision log is published unsigned", key_path)
        return None, "this site has no onion key, so no address vouches for the log"
    # Here, not at the top: the gunicorn master imports the builder, which imports this module, and every
    # worker it forks would carry the tor room and libsodium, which no request needs.
    from blog.tor import identity, keys
    from blog.tor.errors import KeyFileError

    try:
        key = keys.read_key(key_path)
        return key, identity.address_of(key)
    except KeyFileError as exc:
        log.error("the revision log is published unsigned: %s", exc)
        return None, "the site's onion key could not be read when this build was made"


def _sign(key: bytes, message: bytes) -> bytes:
    from blog.tor import identity  # in the publishing process only (see key_address)

    return identity.sign(key, message)


def signed_address(build: Build) -> str | None:
    """Return the address that signed a build's log, or None."""
    revlog = getattr(build, "revlog", None)
    return revlog.address if isinstance(revlog, SignedHead) else None


def needs_signing(build: Build, key_path: Path) -> bool:
    """Tell whether a build's log is signed by another key than the one at key_path (or by none, with one)."""
    key, address = key_address(key_path)
    return getattr(build, "revlog", None) is None or signed_address(build) != (address if key else None)


def _shown(build: Build, entry: Entry) -> ServedRevision:
    revisions = build.revisions.get(entry.slug, ())
    latest = revisions[-1] if revisions else None
    files = {}
    for url in build.files.links.get(entry.slug, ()):
        path = content_path(build.files.folders[entry.slug], url)
        asset = build.files.assets.get(path or "")
        if asset is not None:
            files[asset.path] = asset.url
    return ServedRevision(len(revisions), bool(latest and latest.recorded), dict(sorted(files.items())))


def attach(build: Build, content_dir: Path, key_path: Path) -> RevisionLog:
    """Check the chain against the lock and the files the build serves; sign its head; put it on the build."""
    path = Path(content_dir.name) / CHAIN_NAME
    try:
        locked = read_lock(content_dir)
        chain = read_chain(content_dir)
    except HonestyError as exc:
        raise ContentProblems([ContentError(path, 1, str(exc), "see docs/honesty.md")]) from exc
    paths = {slug: sorted(revisions[-1].files or {}) for slug, revisions in locked.items() if revisions}

    def served(slug: str) -> dict[str, str]:
        return served_digests(build.files, paths.get(slug, []))

    if chain is None:
        # A content tree from before the chain: the lock's records in the order they were recorded, until
        # `blog lock` writes published.chain (blog check says so).
        chain = from_lock(locked, served)
        log.warning("%s does not exist: publishing the chain derived from published.lock (run `blog lock`)",
                    chain_path(content_dir))
    problems = lock_problems(chain, locked, content_dir)
    problems += _served_problems(build, chain, served)
    if problems:
        raise ContentProblems(problems)
    key, found = key_address(key_path)  # the address, or why there is no key
    signature = _sign(key, statement(found, head_of(chain), len(chain))) if key else None
    revlog = RevisionLog(chain, {e.slug: _shown(build, e) for e in build.site.published(utcnow())},
                         found if key else None,
                         base64.b64encode(signature).decode("ascii") if signature else None,
                         "" if key else found)
    build.revlog, build.revlog_answers = revlog.signed_head(), LogStore(revlog.answers())
    log.info("revision log: %d records, head %s, %s", len(chain), revlog.head[:16],
             f"signed by {found}.onion" if key else f"unsigned ({found})")
    return revlog


def _served_problems(build: Build, chain: tuple[Record, ...], served: Served) -> list[ContentError]:
    """Refuse to serve a recorded revision's files as other bytes than the chain says (the cleaning changed)."""
    latest: Mapping[str, Record] = {r.slug: r for r in chain}
    problems = []
    for entry in build.site.published(utcnow()):
        record = latest.get(entry.slug)
        revisions = build.revisions.get(entry.slug, ())
        if record is None or not record.served or not revisions or not revisions[-1].recorded \
                or record.revision != len(revisions):
            continue
        now = served(entry.slug)
        for path, digest in sorted(record.served.items()):
            if now.get(path, digest) != digest:
                problems.append(ContentError(
                    entry.path, entry.body_line, f"{path} would be served as other bytes than the revision log "
                    f"records for {record.name} (the operator's file is unchanged: this software cleans it "
                    "differently now)", "add a dated update saying the pictures were encoded again, then run "
                    "`blog lock`: readers who checked the old file would see another"))
    return problems


def record_chain(site: Site, content_dir: Path) -> list[str]:
    """Append the lock's new revisions to published.chain (`blog lock`, after the lock); return what changed."""
    locked = read_lock(content_dir)
    chain = read_chain(content_dir)
    cleaned: list[FileSet] = []

    def served(slug: str) -> dict[str, str]:
        paths = sorted(locked[slug][-1].files or {})
        if not paths:
            return {}
        if not cleaned:  # the files as a build serves them: cleaned the same way, once
            cleaned.append(check_files(site)[0])
        return served_digests(cleaned[0], paths)

    extended = from_lock(locked, served, chain or ())
    problems = lock_problems(extended, locked, content_dir)
    if problems:
        raise HonestyError("refusing to extend the revision log:\n" + "\n".join(str(p) for p in problems))
    if chain is not None and extended == chain:
        return []
    write_chain(content_dir, extended)
    added = len(extended) - len(chain or ())
    started = "" if chain is not None else f"started {CHAIN_NAME} from published.lock: "
    return [f"{started}appended {added} record(s) to the revision log, head {head_of(extended)}"]


def chain_notes(content_dir: Path) -> tuple[list[ContentError], str]:
    """Return `blog check`'s view of the chain: its disagreements with the lock, and a note when it is missing."""
    try:
        chain = read_chain(content_dir)
        locked = read_lock(content_dir)
    except HonestyError as exc:
        return [ContentError(Path(content_dir.name) / CHAIN_NAME, 1, str(exc), "see docs/honesty.md")], ""
    if chain is None:
        return [], (f"note: {CHAIN_NAME} does not exist yet: run `blog lock` to start the public revision log "
                    "and commit it with published.lock") if locked else ""
    return lock_problems(chain, locked, content_dir), ""
