"""The revision log as a build holds and serves it: plain data, read by request workers (who never see the key).

The signing is in `revlog` (the publishing process); this module imports nothing of the tor room, so a worker
that loads a build does not load it either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blog.honesty.chain import Record, head_of

FORMAT = 1
LOG_PATH = "/revisions.json"


@dataclass(frozen=True)
class Shown:
    """What a build serves of one entry: the revision it shows, whether the chain holds it, the files it links."""

    revision: int
    recorded: bool
    files: dict[str, str] = field(default_factory=dict)  # path in the content tree -> served URL path


@dataclass(frozen=True)
class RevisionLog:
    """The chain a build publishes, with the signature of its head when the site has an onion key."""

    records: tuple[Record, ...]
    shown: dict[str, Shown]
    address: str | None = None  # 56 characters, no .onion: the key that signed
    signature: str | None = None  # base64 of the ed25519 signature of statement(address, head, size)
    unsigned: str = ""  # why there is no signature

    @property
    def head(self) -> str:
        return head_of(self.records)

    def of(self, slug: str) -> tuple[Record, ...]:
        return tuple(r for r in self.records if r.slug == slug)

    def latest(self, slug: str) -> Record | None:
        mine = self.of(slug)
        return mine[-1] if mine else None

    def head_json(self) -> dict[str, Any]:
        return {"hash": self.head, "size": len(self.records),
                "address": f"{self.address}.onion" if self.address else None, "signature": self.signature,
                "signed": "ed25519 by the onion address's key over STATEMENT + canonical({address, head, size})"
                          if self.signature else f"not signed: {self.unsigned}"}

    def as_json(self) -> dict[str, Any]:
        """Return the whole log as /revisions.json serves it."""
        return {"format": FORMAT, "head": self.head_json(), "records": [r.as_json() for r in self.records],
                "entries": {slug: self.entry_view(slug) for slug in sorted(self.shown)}}

    def entry_view(self, slug: str) -> dict[str, Any]:
        shown = self.shown[slug]
        return {"revision": shown.revision, "recorded": shown.recorded, "page": f"/log/{slug}",
                "text": f"/log/{slug}/revisions/{shown.revision}.md", "files": shown.files}

    def entry_json(self, slug: str) -> dict[str, Any]:
        """Return one entry's records and what the build serves of it, with the log's signed head."""
        return {"format": FORMAT, "slug": slug, "head": self.head_json(), "log": LOG_PATH,
                "records": [r.as_json() for r in self.of(slug)], "served": self.entry_view(slug)}
