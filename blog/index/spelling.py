"""Did you mean: a spelling the log uses for a word it does not, offered only when it helps.

The search page offers the corrected query; MCP answers carry it as `corrected`. A word is corrected only
when the index holds it in no field; it is replaced by the indexed word nearest to it (Whoosh's corrector,
edit distance 2), unless that is the reader's own word with another ending (the log says "visit", the
reader asked about "visitors"); and the corrected query is offered only when it finds more than the
reader's. See docs/search.md, "Snippets, spelling, cache".
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

from whoosh import query as wq
from whoosh.searching import Searcher

from blog.builds import Build
from blog.index import query as q
from blog.index.engine.rank import Scored
from blog.index.sources import find_block

SPELLINGS = 1024  # remembered spelling suggestions: a key is a query of at most MAX_QUERY characters

# Endings English puts on a word (plural, tense, agent, derivation); "" for the bare word
ENDINGS = frozenset({"", "s", "es", "ed", "ing", "ings", "er", "ers", "or", "ors", "ion", "ions", "ation",
                     "ations", "ly", "ment", "ments", "ness", "able", "ible", "al", "ally", "ity", "ive", "ives",
                     "ise", "ize", "ised", "ized", "ising", "izing", "ist", "ists", "y", "ies", "ied", "e"})


class Spellings:
    """The spellings already looked up, per index directory and unknown stem (a Search keeps one)."""

    def __init__(self, most: int = SPELLINGS) -> None:
        self.most = most
        self._found: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, str | None]:
        """Return whether the key was looked up, and what was found."""
        with self._lock:
            return (True, self._found[key]) if key in self._found else (False, None)

    def put(self, key: tuple[str, str], spelled: str | None) -> None:
        with self._lock:
            self._found[key] = spelled
            while len(self._found) > self.most:
                self._found.popitem(last=False)


def correct(searcher: Searcher, build: Build, parsed: q.Parsed, text: str, scored: Scored,
            mask: wq.Query | None, spellings: Spellings) -> str | None:
    """Suggest a spelling that helps, or None.

    Only a word the index does not hold is replaced: by the indexed word nearest to it, unless that is the
    reader's own word without its ending or with another (the log says "visit", the reader "visitors": the
    reader meant visitors). And only when the corrected query finds more than the reader's.
    """
    corrected = text
    for word in parsed.words:
        stem = q.stems(word)
        if len(stem) != 1 or any(searcher.doc_frequency(f, t) for f, t in
                                 (("text", stem[0]), ("about", stem[0]), ("ident", word.lower()))):
            continue
        spelled = _spelling(searcher, build, stem[0], spellings)
        if spelled and not inflected(word.lower(), spelled):
            corrected = corrected.replace(word, spelled, 1)
    if corrected == text:
        return None
    fixed = q.parse(corrected)
    plan = q.compile_plan(fixed)
    if plan is None or Scored(searcher, plan, allowed=q.filter_query(fixed), mask=mask).found() <= scored.found():
        return None
    return corrected


def inflected(word: str, other: str) -> bool:
    """Tell whether two different words are one word with different endings (visitors, visit; logging, logs).

    A doubled letter before an ending belongs to the ending (log, logging). Two words that differ only in a
    doubled letter are a slip of the finger, not an inflection ("permisions", "addresss").
    """
    common = 0
    while common < min(len(word), len(other)) and word[common] == other[common]:
        common += 1
    if common < 3:
        return False
    last = word[common - 1]
    tails = {tail[1:] if tail[:1] == last else tail for tail in (word[common:], other[common:])}
    return len(tails) == 2 and tails <= ENDINGS


def _spelling(searcher: Searcher, build: Build, stem: str, spellings: Spellings) -> str | None:
    """Return the word the log uses for the indexed stem nearest to an unknown one (cached per index)."""
    key = (str(build.index_dir), stem)  # an index directory never changes once written
    known, spelled = spellings.get(key)
    if known:
        return spelled
    # Whoosh's corrector measures the edit distance to every indexed stem with the same first letter
    found = searcher.suggest("text", stem, limit=1, maxdist=2, prefix=1)
    first = _first_key(searcher, found[0]) if found else None
    spelled = None
    if first:
        slug, anchor = first.split("#", 1)
        block = find_block(build, slug, anchor)
        word = next((w for w in re.findall(r"\w+", block.text) if q.stems(w) == [found[0]]), None) \
            if block else None
        spelled = word.lower() if word else None
    spellings.put(key, spelled)
    return spelled


def _first_key(searcher: Searcher, stem: str) -> str | None:
    """Return the key of the first block that uses a stem (reading one posting, not scoring them all)."""
    postings = searcher.reader().postings("text", stem)  # skips deleted documents
    return searcher.stored_fields(postings.id()).get("key") if postings.is_active() else None
