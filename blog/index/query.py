"""The query language readers and agents type: words, "phrases", not:word, tag:, after:, before:.

Parsed by hand into Whoosh query objects (not Whoosh's QueryParser) so that every malformed query gets a
plain explanation and every word is searched the same way in prose, identifiers, titles and headings.

Pasted text is searched as text: a command line's flags (`-k`, `--threads`, `-X`), paths, `key=value`
and error lines are words to find. Leaving words out takes the one form a pasted line does not produce
by accident, `not:word` or `not:"a phrase"`; a leading minus was that form once, and it turned
`gunicorn -k sync --threads 4` into two exclusions that dropped the very paragraph that answered it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from whoosh import query as wq
from whoosh.analysis import LowercaseFilter, RegexTokenizer, StemFilter, StopFilter, Token
from whoosh.query.compound import DefaultOr

from blog.index.engine.rank import Plan
from blog.index.results import SearchError
from blog.index.schema import STOP, prose_analyzer, split_identifier, stem_word

MAX_QUERY = 200  # characters; longer input is refused, not searched slowly
MAX_TERMS = 24
_TOKEN = re.compile(r'(?:(tag|after|before|not):)?("[^"]*"?|[^\s"]+)', re.IGNORECASE)
_TAG = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_PROSE = prose_analyzer()
# Snippets split at every non-letter, so Controller.authenticate() and ADD_ONION light up for their parts.
HIGHLIGHT = RegexTokenizer(r"[^\W_]+") | LowercaseFilter() | StopFilter(stoplist=STOP) | StemFilter()
_LETTERS = re.compile(r"[^\W_]+")


def fast_highlight(value: str, positions: bool = False, chars: bool = False, keeporiginal: bool = False,
                   removestops: bool = True, start_pos: int = 0, start_char: int = 0, tokenize: bool = True,
                   mode: str = "", **kwargs: object) -> Iterator[Token]:
    """Yield HIGHLIGHT's tokens with its steps inline: a snippet analyses every word of ten blocks a query.

    The same tokens as HIGHLIGHT (tests/test_index.py compares them); positions and untokenized values go
    through HIGHLIGHT itself.
    """
    if positions or not tokenize:
        yield from HIGHLIGHT(value, positions=positions, chars=chars, keeporiginal=keeporiginal,
                             removestops=removestops, start_pos=start_pos, start_char=start_char,
                             tokenize=tokenize, mode=mode, **kwargs)
        return
    t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
    for match in _LETTERS.finditer(value):
        original = match.group(0)
        word = original.lower()
        stopped = len(word) < 2 or word in STOP  # StopFilter's default minsize is 2
        if stopped and removestops:
            continue
        t.text, t.stopped, t.boost = (word if stopped else stem_word(word)), stopped, 1.0
        if keeporiginal:
            t.original = original
        if chars:
            t.startchar, t.endchar = start_char + match.start(), start_char + match.end()
        yield t
# How much a match in each field counts: the paragraph's own words most, its entry's title and the
# headings above it less (they say what the paragraph is about, not what it says).
BOOSTS = {"text": 1.0, "ident": 0.9, "about": 0.45}


@dataclass
class Parsed:
    """A query taken apart: the words and phrases to match, the ones to exclude, and the filters."""

    words: list[str] = field(default_factory=list)
    said: str = ""  # the words and phrases in the order typed, without the operators: what meaning ranks
    phrases: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    after: dt.datetime | None = None
    before: dt.datetime | None = None


def parse_date(value: str | dt.date | dt.datetime | None, what: str) -> dt.datetime | None:
    """Read YYYY, YYYY-MM or YYYY-MM-DD (or a date) as midnight UTC at its start."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y-%m", "%Y"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise SearchError(f"{what}:{text} is not a date; write it as YYYY-MM-DD, e.g. {what}:2026-01-01")


def parse(text: str) -> Parsed:
    """Take a query apart, raising SearchError with a plain message when it cannot be read."""
    if len(text) > MAX_QUERY:
        raise SearchError(f"the query is {len(text)} characters long; keep it under {MAX_QUERY}")
    if text.count('"') % 2:
        raise SearchError('a quotation mark is not closed; put phrases between two " marks')
    parsed = Parsed()
    said = []
    for name, value in _TOKEN.findall(text):
        name = name.lower()
        if name == "not":
            excluded = value.strip('"').strip()
            if excluded:
                parsed.negatives.append(excluded)
        elif name == "tag":
            tag = value.strip('"').lower()
            if not _TAG.match(tag):
                raise SearchError(f"tag:{value} is not a tag; tags are lowercase words, e.g. tag:tor")
            parsed.tags.append(tag)
        elif name in ("after", "before"):
            setattr(parsed, name, parse_date(value.strip('"'), name))
        elif value.startswith('"'):
            phrase = value.strip('"').strip()
            if phrase:
                parsed.phrases.append(phrase)
                said.append(phrase)
        elif stems(value) or split_identifier(value):
            parsed.words.append(value)
            said.append(value)
        else:
            said.append(value)  # punctuation alone (a prompt's `$`, an arrow): nothing to match, still text
    parsed.said = " ".join(said)
    if len(parsed.words) + len(parsed.phrases) + len(parsed.negatives) > MAX_TERMS:
        raise SearchError(f"the query has more than {MAX_TERMS} words; ask with fewer")
    if parsed.after and parsed.before and parsed.after >= parsed.before:
        raise SearchError("after: is not earlier than before:, so nothing can match; swap or widen the dates")
    return parsed


def stems(text: str) -> list[str]:
    """Return the prose terms of a text (stop words dropped, stems kept)."""
    return [t.text for t in _PROSE(text)]


def _terms(fieldname: str, terms: list[str], boost: float) -> wq.Query | None:
    if not terms:
        return None
    if len(terms) == 1:
        return wq.Term(fieldname, terms[0], boost=boost)
    return wq.And([wq.Term(fieldname, t) for t in terms], boost=boost)


def _or(clauses: list[wq.Query], scale: float | None = None) -> wq.Query:
    # Whoosh's automatic choice preloads every match of every clause into arrays on small indexes;
    # the union tree reads postings lazily and lets the collector skip blocks that cannot make the top N.
    return DefaultOr(clauses, scale=scale)


def word_clauses(word: str) -> list[wq.Query]:
    """Return one word's clauses: the paragraph, its identifiers, its entry's title and headings."""
    prose = stems(word)
    idents = [word.lower()] if len(split_identifier(word)) > 1 or prose else []
    clauses = [_terms("text", prose, BOOSTS["text"]), _terms("ident", idents, BOOSTS["ident"]),
               _terms("about", prose, BOOSTS["about"])]
    return [c for c in clauses if c is not None]  # empty for a stop word


def word_query(word: str) -> wq.Query | None:
    """Match one word in the paragraph, its identifiers, its entry's title and its headings."""
    clauses = word_clauses(word)
    return _or(clauses) if clauses else None


def phrase_query(phrase: str, boost: float = 1.0, slop: int = 1) -> wq.Query | None:
    """Match the words of a phrase next to each other in the paragraph."""
    terms = stems(phrase)
    if len(terms) < 2:
        return word_query(phrase) if terms or split_identifier(phrase) else None
    return wq.Phrase("text", terms, slop=slop, boost=boost)


def compile_plan(parsed: Parsed) -> Plan | None:
    """Return what to score for a query's words and phrases; None when only stop words remain."""
    words = [c for c in (word_clauses(w) for w in parsed.words) if c]
    loose = len(words)
    phrases: list[wq.Query] = []
    for text in parsed.phrases:
        if len(stems(text)) < 2:  # a quoted single word: a word every result must contain
            words += [c for c in [word_clauses(text)] if c]
        elif (phrase := phrase_query(text)) is not None:
            phrases.append(phrase)
    if not words and not phrases:
        return None
    near = phrase_query(" ".join(parsed.words), boost=2.0, slop=3) if loose > 1 else None
    negatives = [q for q in (phrase_query(n) for n in parsed.negatives) if q is not None]
    return Plan(words, loose, phrases, near if isinstance(near, wq.Phrase) else None,
                wq.Or(negatives) if negatives else None, scale=0.9)


def filter_query(parsed: Parsed) -> wq.Query | None:
    """Return the tag and date filters, or None."""
    clauses: list[wq.Query] = [wq.Term("tags", t) for t in parsed.tags]
    if parsed.after or parsed.before:
        start = int(parsed.after.timestamp()) if parsed.after else None
        end = int(parsed.before.timestamp()) - 1 if parsed.before else None
        clauses.append(wq.NumericRange("ts", start, end))
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else wq.And(clauses)


def highlight_terms(parsed: Parsed) -> frozenset[str]:
    """Return the terms to mark in a snippet: stems of the words, and of an identifier's parts."""
    out: set[str] = set()
    for text in [*parsed.words, *parsed.phrases]:
        out.update(t.text for t in HIGHLIGHT(text))
    return frozenset(out)
