"""The Whoosh schema: one document per citable block, prose stemmed, identifiers split into their parts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from whoosh import fields, formats
from whoosh.analysis import Filter, RegexTokenizer, StemmingAnalyzer, Token
from whoosh.analysis.filters import STOP_WORDS
from whoosh.analysis.tokenizers import default_pattern
from whoosh.lang.porter import stem as porter_stem
from whoosh.system import pack_uint

from blog.render import Block

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
_IDENT = re.compile(IDENT_PATTERN)
# What any compound identifier in ASCII text contains: joined words (\w[._:/-]+\w), an underscore, a digit,
# a lower-case letter before a capital (camelCase) or two capitals before a lower-case letter (HTTPServer).
# One regex with those five branches cost 30 µs a paragraph (a tenth of a full build); a scan for the few
# capitals and punctuation marks a paragraph has, each checked by hand, costs a quarter of that.
_DIGIT_OR_UNDERSCORE = re.compile(r"[0-9_]")
_CAPITAL_OR_JOINER = re.compile(r"[A-Z._:/\-]")
_JOINERS = frozenset("._:/-")


def _may_hold_identifier(text: str) -> bool:
    """Tell whether ASCII text has anything a compound identifier contains (see above)."""
    if _DIGIT_OR_UNDERSCORE.search(text):
        return True
    end = len(text)
    for match in _CAPITAL_OR_JOINER.finditer(text):
        i = match.start()
        if text[i].isupper():
            if (i and text[i - 1].islower()) or (i + 2 < end and text[i + 1].isupper() and text[i + 2].islower()):
                return True
        elif i and text[i - 1].isalnum():
            j = i + 1
            while j < end and text[j] in _JOINERS:
                j += 1
            if j < end and text[j].isalnum():
                return True
    return False

def split_identifier(word: str) -> list[str]:
    """Return an identifier's parts: HiddenServicePort -> hidden, service, port; ADD_ONION -> add, onion."""
    parts: list[str] = []
    for piece in _PUNCT.split(word.replace("_", ".")):
        subs = [p.lower() for p in _PARTS.findall(piece)]
        if len(subs) > 1:
            parts.append(piece.lower())  # ed25519 as well as ed and 25519
        parts.extend(subs)
    return list(dict.fromkeys(p for p in parts if p))


def maybe_compound(word: str) -> bool:
    """Tell cheaply whether a token can be a compound identifier (most prose words cannot)."""
    if word.isalpha():
        return not (word.islower() or word.isupper() or word[1:].islower())
    return not word.isdigit()


def identifiers(text: str) -> str:
    """Return only the tokens of a text that may be compound identifiers, for the `ident` field."""
    if text.isascii() and not _may_hold_identifier(text):
        return ""  # most paragraphs: no word in them can be an identifier
    return " ".join(w for w in _IDENT.findall(text) if maybe_compound(w))


class IdentifierFilter(Filter):
    """Keep only compound identifiers, emitting the whole (lowercased) and each part at the same position."""

    def __call__(self, tokens: Iterator[Token]) -> Iterator[Token]:
        for t in tokens:
            word = t.text
            parts = split_identifier(word) if maybe_compound(word) else ()
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


_WORD = re.compile(default_pattern.pattern)  # the prose analyzer's tokenizer
# The same pattern without its capturing group, for findall(); on ASCII text lowercasing first changes no
# match (on other text it can: "İ" lowercases to two characters, the second not a word character).
_WORDS = re.compile(default_pattern.pattern.replace("(", "(?:"))
stem_word = lru_cache(maxsize=50_000)(porter_stem)  # its StemFilter: Porter, cached
_SINGLE: dict[int, bytes] = {}  # Positions.encode([p]) by p: most terms occur once in a block


def _encode_positions(fmt: formats.Positions, poslist: list[int]) -> bytes:
    if len(poslist) == 1:
        pos = poslist[0]
        encoded = _SINGLE.get(pos)
        if encoded is None:
            encoded = _SINGLE[pos] = fmt.encode(poslist)
        return encoded
    return fmt.encode(poslist)


class ProseText(fields.TEXT):
    """A TEXT field whose index() runs the prose analyzer's steps inline.

    The same terms, frequencies and positions as StemmingAnalyzer(stoplist=STOP, minsize=1) through
    Whoosh's Positions or Frequency format (tests/test_index.py compares them), without a Token object and
    four generator frames per word: indexing prose took about half of a full build.
    """

    def index(self, value: object, **kwargs: object) -> Iterable[tuple[bytes, int, float, bytes]]:
        fmt = self.format
        if kwargs or not isinstance(value, str) or type(fmt) not in (formats.Positions, formats.Frequency):
            return super().index(value, **kwargs)
        if value.isascii():
            words = _WORDS.findall(value.lower())
        else:
            words = [m.group().lower() for m in _WORD.finditer(value)]
        # StopFilter(renumber=True): the first kept word keeps its position, the rest follow it
        first = next((n for n, w in enumerate(words) if w not in STOP), 0)
        poses: dict[str, list[int]] = {}
        for pos, word in enumerate((w for w in words if w not in STOP), first):
            poses.setdefault(stem_word(word), []).append(pos)
        boost = fmt.field_boost
        if type(fmt) is formats.Positions:
            return [(w.encode("utf-8"), len(p), len(p) * boost, _encode_positions(fmt, p))
                    for w, p in poses.items()]
        return [(w.encode("utf-8"), len(p), len(p) * boost, pack_uint(len(p))) for w, p in poses.items()]


def identifier_analyzer() -> RegexTokenizer:
    return RegexTokenizer(IDENT_PATTERN) | IdentifierFilter()


def make_schema() -> fields.Schema:
    """Return the schema: key and kind are stored, not indexed; text, titles and dates come from the build."""
    prose = prose_analyzer()
    return fields.Schema(
        key=fields.STORED,  # slug#anchor; entries are replaced by slug, so the key needs no postings
        slug=fields.ID,  # an entry's slug, or "page:<slug>" (blog.content.page_key)
        kind=fields.STORED,  # for ranking code below prose (p, li, code, table, h, summary, update)
        tags=fields.KEYWORD(lowercase=True, commas=True),
        # Entry date in epoch seconds. A 16-bit shift step indexes 4 terms per block instead of Whoosh's
        # default 16; ranges over the few thousand distinct dates stay cheap.
        # A page has none, so after: and before: narrow a search to entries.
        ts=fields.NUMERIC(int, bits=64, signed=True, shift_step=16),
        text=ProseText(analyzer=prose),  # spelling=True would double indexing time; see spelling.py
        # Neither field is searched by phrase, so neither stores positions.
        ident=fields.TEXT(analyzer=identifier_analyzer(), phrase=False),
        about=ProseText(analyzer=prose, phrase=False),  # the entry's or page's title, the headings above
    )


# What every block document of one entry or page shares: its index slug, tags, date (epoch seconds, None for
# a page: date filters narrow to entries) and title. blog/index/sources.py says which blocks each one has.
Fields = tuple[str, str, int | None, str]
# What a process needs to index a set of entries and pages: plain picklable data (see engine/full.py).
Part = list[tuple[Fields, tuple[Block, ...]]]


def block_documents(fields_: Fields, blocks: Iterable[Block]) -> Iterator[dict[str, object]]:
    """Yield one document per block, given what its entry or page shares."""
    slug, tags, ts, title = fields_
    common = {"slug": slug, "tags": tags, "ts": ts}
    for block in blocks:
        yield {
            **common,
            "key": f"{slug}#{block.anchor}",
            "kind": block.kind,
            "text": block.text,
            "ident": identifiers(block.text),
            "about": " ".join((title, *block.heading_path)),
        }
