"""The revision log as a build holds and serves it: plain data, read by request workers (who never see the key).

The signing is in `revlog` (the publishing process); this module imports nothing of the tor room, so a worker
that loads a build does not load it either. A build keeps only the signed head in memory (`SignedHead`); the
log's JSON answers are written into the build's directory and read when asked for (`answers`): at 10,000
entries the records would be some 9 MB in every worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from blog.honesty.chain import Record, head_of

FORMAT = 1
LOG_PATH = "/revisions.json"


@dataclass(frozen=True)
class ServedRevision:
    """What a build serves of one entry: the revision it shows, whether the chain holds it, the files it links."""

    revision: int
    recorded: bool
    files: dict[str, str] = field(default_factory=dict)  # path in the content tree -> served URL path


@dataclass(frozen=True)
class SignedHead:
    """What every page may show of the log: its head, its size, and who signed it (or why nobody did)."""

    head: str
    size: int
    address: str | None = None  # 56 characters, no .onion: the key that signed
    signature: str | None = None  # base64 of the ed25519 signature of statement(address, head, size)
    unsigned: str = ""  # why there is no signature

    def as_json(self) -> dict[str, Any]:
        return {"hash": self.head, "size": self.size,
                "address": f"{self.address}.onion" if self.address else None, "signature": self.signature,
                "signed": "ed25519 by the onion address's key over STATEMENT + canonical({address, head, size})"
                          if self.signature else f"not signed: {self.unsigned}"}


@dataclass(frozen=True)
class RevisionLog:
    """The chain a build publishes, with the signature of its head when the site has an onion key."""

    records: tuple[Record, ...]
    shown: dict[str, ServedRevision]
    address: str | None = None  # 56 characters, no .onion: the key that signed
    signature: str | None = None  # base64 of the ed25519 signature of statement(address, head, size)
    unsigned: str = ""  # why there is no signature

    @property
    def head(self) -> str:
        return head_of(self.records)

    def signed_head(self) -> SignedHead:
        return SignedHead(self.head, len(self.records), self.address, self.signature, self.unsigned)

    def entry_view(self, slug: str) -> dict[str, Any]:
        shown = self.shown[slug]
        return {"revision": shown.revision, "recorded": shown.recorded, "page": f"/log/{slug}",
                "text": f"/log/{slug}/revisions/{shown.revision}.md", "files": shown.files}

    def answers(self) -> dict[str, str]:
        """Return the JSON texts served: "" -> the whole log (/revisions.json), slug -> one entry's view."""
        head = self.signed_head().as_json()
        records = [r.as_json() for r in self.records]  # each hash computed once
        by_slug: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_slug.setdefault(record["slug"], []).append(record)
        found = {"": _text({"format": FORMAT, "head": head, "records": records,
                            "entries": {slug: self.entry_view(slug) for slug in sorted(self.shown)}})}
        for slug in self.shown:
            found[slug] = _text({"format": FORMAT, "slug": slug, "head": head, "log": LOG_PATH,
                                 "records": by_slug.get(slug, []), "served": self.entry_view(slug)})
        return found


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"  # without indent: the C encoder, 20 times faster
