"""The Whoosh schema: one document per citable block, prose stemmed, identifiers split into their parts."""

from __future__ import annotations

import re
from collections.abc import Iterator

from whoosh import fields
from whoosh.analysis import Filter, RegexTokenizer, StemmingAnalyzer, Token
from whoosh.analysis.filters import STOP_WORDS

from blog.content import Entry
from blog.render import Rendered

# Words that carry no meaning in a reader's question ("how do I ...?"). Whoosh's list plus question words;
# removing them is what lets a question rank on the words that matter instead of needing every word.
STOP = frozenset(STOP_WORDS) | {
    "how", "do", "does", "did", "i", "what", "why", "which", "who", "where", "me", "my", "there", "is",
    "was", "were", "should", "would", "could", "about", "into", "than", "then", "its", "our", "out",
    "has", "had", "been", "so", "but", "all", "any", "some", "own", "just", "get", "got", "he", "she",
    "they", "them", "their", "these", "those", "doing", "am", "very", "here", "also",
}

# An identifier: word characters joined by the punctuation code uses (ADD_ONION, gunicorn.http.wsgi,
# hs_ed25519_secret_key, --verify-config, 127.0.0.1:8080).
IDENT_PATTERN = r"\w+(?:[._:/\-]+\w+)*"
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_PUNCT = re.compile(r"[._:/\-]+")


def split_identifier(word: str) -> list[str]:
    """Return an identifier's parts: HiddenServicePort -> hidden, service, port; ADD_ONION -> add, onion."""
    parts: list[str] = []
    for piece in _PUNCT.split(word.replace("_", ".")):
        subs = [p.lower() for p in _PARTS.findall(piece)]
        if len(subs) > 1:
            parts.append(piece.lower())  # ed25519 as well as ed and 25519
        parts.extend(subs)
    return list(dict.fromkeys(p for p in parts if p))


class IdentifierFilter(Filter):
    """Keep only compound identifiers, emitting the whole (lowercased) and each part at the same position."""

    def __call__(self, tokens: Iterator[Token]) -> Iterator[Token]:
        for t in tokens:
            word = t.text
            parts = split_identifier(word)
            if len(parts) < 2:
                continue  # a plain word is the prose field's business; indexing it twice skews BM25
            t.text = word.lower()
            yield t
            for part in parts:
                if part != t.text:
                    t.text = part
                    yield t


def prose_analyzer() -> StemmingAnalyzer:
    return StemmingAnalyzer(stoplist=STOP, minsize=1)


def identifier_analyzer() -> RegexTokenizer:
    return RegexTokenizer(IDENT_PATTERN) | IdentifierFilter()


def make_schema() -> fields.Schema:
    """Return the schema: only the key is stored; text, titles and dates come from the build."""
    prose = prose_analyzer()
    return fields.Schema(
        key=fields.ID(stored=True, unique=True),  # slug#anchor
        slug=fields.ID,
        kind=fields.ID(stored=True),
        tags=fields.KEYWORD(lowercase=True, commas=True),
        ts=fields.NUMERIC(int, bits=64, signed=True),  # entry date, epoch seconds, for after:/before:
        text=fields.TEXT(analyzer=prose),  # spelling=True would double indexing time; see lookup
        ident=fields.TEXT(analyzer=identifier_analyzer()),
        title=fields.TEXT(analyzer=prose),
        head=fields.TEXT(analyzer=prose),
    )


def documents(entry: Entry, rendered: Rendered) -> Iterator[dict[str, object]]:
    """Yield one document per citable block of an entry."""
    for block in rendered.blocks:
        yield {
            "key": f"{entry.slug}#{block.anchor}",
            "slug": entry.slug,
            "kind": block.kind,
            "tags": ",".join(entry.tags),
            "ts": int(entry.date.timestamp()),
            "text": block.text,
            "ident": block.text,
            "title": entry.title,
            "head": " ".join(block.heading_path),
        }
