"""An entry's or page's Markdown: held in memory while a build is made, read back from the build after.

A worker that kept every entry's Markdown twice (the file and its body) held 30 MB at 1,000 entries and
300 MB at 10,000, most of its memory. Once a build is saved its texts live in a file of the build
(blog/builds/stores.py); a `Text` then keeps only where its text is and the hash of its body, and reads the text
when a page, a feed or a tool asks for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


class Text:
    """The Markdown of one entry or page: `body` (after the front matter) and `source` (the whole file)."""

    __slots__ = ("_body", "_key", "_source", "_store", "digest", "source_digest")

    def __init__(self, body: str, source: str) -> None:
        self._body: str | None = body
        self._source: str | None = source
        self._store: Mapping[str, tuple[str, str]] | None = None
        self._key = ""
        # The honesty room's body hash: also how a new build finds the entries it can reuse.
        self.digest = hashlib.sha256(body.strip().encode()).hexdigest()
        # The whole file, front matter too: how the index finds the entries it must index again.
        self.source_digest = hashlib.sha256(source.encode()).hexdigest()

    @property
    def body(self) -> str:
        return self._body if self._body is not None else self._read()[0]

    @property
    def source(self) -> str:
        return self._source if self._source is not None else self._read()[1]

    def _read(self) -> tuple[str, str]:
        if self._store is None:
            raise LookupError("this text was never stored")
        return self._store[self._key]

    def detach(self, store: Mapping[str, tuple[str, str]], key: str) -> None:
        """Forget the text: from now on read it from `store[key]`, which holds (body, source)."""
        self._store, self._key = store, key
        self._body = self._source = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Text):
            return NotImplemented
        return self.source_digest == other.source_digest and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"Text(digest={self.digest[:12]}…)"

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)


class Written:
    """What entries and pages share: their Markdown, held by a `Text`."""

    text: Text

    @property
    def body(self) -> str:
        """The Markdown after the front matter."""
        return self.text.body

    @property
    def source(self) -> str:
        """The whole file, front matter included."""
        return self.text.source
