"""Print recall@1, recall@5, MRR and nDCG@5 of search() on both question sets, beside the baselines.

    python -m bench.quality                 # the bundled content/, both sets side by side, per kind
    python -m bench.quality --questions tests/data/questions.yml   # one set only
    python -m bench.quality --anchors SLUG  # an entry's blocks and anchors, to fix the YAML after an edit

Rankers: search() as served (words and meaning fused, the model from `make model`), search() by words
alone, and, as baselines over the same blocks (entries, their summaries and update notes, and the standing
pages): Whoosh's plain QueryParser (every word required, BM25), and SQLite FTS5's bm25() with the porter
tokenizer (words OR-ed, since FTS5's implicit AND answers few questions).

A block is named by its anchor, except a summary, whose anchor (`summary`) every entry and page shares: the
question sets name it `summary:<slug>`, and so do the rankers here (answer_key).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from whoosh import index as windex
from whoosh import qparser

from blog.builds import Build, make_build
from blog.config import load_config
from blog.content import PAGE_KEY, page_slug
from blog.index import groups, semantic
from blog.index.results import SearchError
from blog.index.search import Search
from blog.index.sources import digests, entry_blocks, page_blocks, parts_of
from blog.index.store import update_index
from blog.render import SUMMARY_ANCHOR

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "tests" / "data" / "questions.yml"
FAR = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
Ranker = Callable[[str], list[str]]


HELDOUT = ROOT / "tests" / "data" / "questions-heldout.yml"


@dataclass(frozen=True)
class Question:
    q: str
    answers: tuple[str, ...]
    no_shared_word: bool = False
    partly: tuple[str, ...] = ()  # blocks that answer in part (the held-out set grades them)
    kind: str = "own"


@dataclass(frozen=True)
class Scores:
    recall1: float
    recall5: float
    mrr: float
    misses: tuple[str, ...]  # questions with no answer in the top 5
    ndcg5: float = 0.0  # graded: an answer gains 2, a partial answer 1
    kinds: tuple[tuple[str, int, float, float], ...] = ()  # (kind, questions, recall@5, MRR)

    def line(self, name: str) -> str:
        return (f"{name:<28} recall@1 {self.recall1:.3f}  recall@5 {self.recall5:.3f}  MRR {self.mrr:.3f}"
                f"  nDCG@5 {self.ndcg5:.3f}")


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Read the evaluation set."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # The held-out set (tests/data/questions-heldout.yml) names answers `answers` and its kind `kind`.
    return [Question(str(d["q"]), tuple(d["a"] if "a" in d else d["answers"]),
                     bool(d.get("no_shared_word")) or d.get("kind") == "no_shared_word",
                     tuple(d.get("partly") or ()),
                     str(d.get("kind") or ("no_shared_word" if d.get("no_shared_word") else "own")))
            for d in data]


def build_content(content_dir: Path, data_dir: Path) -> Build:
    """Render and index a content tree into a data directory."""
    build = make_build(content_dir, data_dir / "builds")
    build.index_dir = update_index(build, data_dir / "index")
    return build


def answer_key(slug: str, anchor: str) -> str:
    """Return how the question sets name a block: its anchor, or summary:<slug> for a summary."""
    slug = slug.removeprefix(PAGE_KEY)
    return f"{SUMMARY_ANCHOR}:{slug}" if anchor == SUMMARY_ANCHOR else anchor


def blocks(build: Build) -> list[tuple[str, str]]:
    """Return every indexed block (entries, summaries, update notes, pages) as (answer key, text)."""
    return [(answer_key(fields[0], b.anchor), b.text)
            for fields, found in parts_of(build.site, build.rendered) for b in found]


def pages_of(build: Build) -> dict[str, str]:
    """Map each standing page's block (by answer key) to its page's slug."""
    return {answer_key(fields[0], b.anchor): fields[0].removeprefix(PAGE_KEY)
            for fields, found in parts_of(build.site, build.rendered) if page_slug(fields[0]) is not None
            for b in found}


def page_hits(ranker: Ranker, questions: list[Question], pages: dict[str, str]) -> tuple[int, list[str]]:
    """Return how many page questions (an answer on a standing page) get a block of that page in the top 5,
    and the questions that do not."""
    found, missed = 0, []
    for question in questions:
        wanted = {pages[a] for a in question.answers if a in pages}
        if not wanted:
            continue
        top = {pages.get(key) for key in list(dict.fromkeys(ranker(question.q)))[:5]}
        if wanted & top:
            found += 1
        else:
            missed.append(question.q)
    return found, missed


def sections(build: Build) -> dict[str, tuple[str, ...]]:
    """Map each heading (by answer key) to the blocks of its section, subsections included (groups.section).

    A heading is never a result on its own (blog/index/sources.py): a question set that names one as an
    answer is answered by any block under it, where the heading's link lands a reader.
    """
    found: dict[str, tuple[str, ...]] = {}
    for slug, _ in digests(build.site):
        if (page := page_slug(slug)) is not None:
            every = page_blocks(build.site.pages[page], build.rendered[slug])
        else:
            every = entry_blocks(build.site.by_slug[slug], build.rendered[slug])
        for i, block in enumerate(every):
            if block.kind == "h":
                found[answer_key(slug, block.anchor)] = tuple(answer_key(slug, b.anchor)
                                                              for b in groups.section(every, i))
    return found


def resolve(build: Build, questions: list[Question]) -> list[Question]:
    """Replace each heading a question names as an answer (or partial answer) by the blocks of its section."""
    under = sections(build)

    def blocks_of(keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for key in keys for k in under.get(key, (key,))))

    return [replace(q, answers=blocks_of(q.answers), partly=blocks_of(q.partly)) for q in questions]


# Questions about what the log never covers: each should get an honest "nothing found" (the floor, fuse.FLOOR).
OFF_TOPIC = ("xyzzyplugh", "best chocolate cake recipe", "who won the football world cup in 1998",
             "how do I train a neural network with pytorch", "kubernetes helm chart values",
             "what is the capital of australia", "how to knit a scarf", "symptoms of the flu",
             "mortgage interest rates this year", "how do I bake sourdough bread?",
             "javascript react hooks tutorial", "what's the weather in paris tomorrow")
KNOWN_CHARS, KNOWN_WORDS = 200, 6
_LONG_WORD = re.compile(r"[^\W\d_]{5,}")


def known_items(build: Build) -> list[tuple[str, str, str]]:
    """Return (slug, anchor, query) for every paragraph of over 200 characters: six of its words of five
    letters or more, from its middle, in order (what a reader remembers of a paragraph)."""
    found = []
    for (slug, *_), parts in parts_of(build.site, build.rendered):
        for block in parts:
            if block.kind != "p" or len(block.text) <= KNOWN_CHARS:
                continue
            words = _LONG_WORD.findall(block.text)
            start = max(0, len(words) // 2 - KNOWN_WORDS // 2)
            found.append((slug, block.anchor, " ".join(words[start:start + KNOWN_WORDS])))
    return found


def known_item_misses(build: Build, meaning: semantic.Meaning | None, grouped: bool) -> list[str]:
    """Return the known-item queries whose paragraph is not the first result: search_blog's first citation,
    or the search page's first result's first paragraph (grouped)."""
    search = Search(meaning)
    missed = []
    for slug, anchor, query in known_items(build):
        found = search.find(build, query, limit=1, now=FAR, grouped=grouped).citations
        first = (found[0].slug.removeprefix(PAGE_KEY), found[0].anchor) if found else None
        if first != (slug.removeprefix(PAGE_KEY), anchor):
            missed.append(f"{slug}#{anchor}: {query!r}")
    return missed


def nothing_found(build: Build, meaning: semantic.Meaning | None) -> list[str]:
    """Return the off-topic questions that get any result (each should get none)."""
    search = Search(meaning)
    return [question for question in OFF_TOPIC if search.find(build, question, now=FAR).total]


def missing_anchors(build: Build, questions: list[Question]) -> list[str]:
    """Name each question whose answer anchors are not in the build (an entry or page was edited)."""
    known = {key for key, _ in blocks(build)} | set(sections(build))
    return [f"{q.q!r}: anchor(s) {', '.join(a for a in q.answers if a not in known)} no longer exist"
            for q in questions if any(a not in known for a in q.answers)]


def ndcg5(ranked: list[str], question: Question) -> float:
    """Return nDCG@5 with graded gains: 2 for an answer, 1 for a partial answer, 0 otherwise."""
    def gain(key: str) -> int:
        return 2 if key in question.answers else 1 if key in question.partly else 0

    def dcg(gains: list[int]) -> float:
        return sum(g / math.log2(i + 2) for i, g in enumerate(gains[:5]))

    ideal = dcg(sorted([2] * len(question.answers) + [1] * len(question.partly), reverse=True))
    return dcg([gain(k) for k in ranked]) / ideal if ideal else 0.0


def score(ranker: Ranker, questions: list[Question]) -> Scores:
    """Compute recall@1, recall@5, MRR (over the top 10) and nDCG@5 of a ranker, and recall@5 and MRR by kind."""
    r1 = r5 = rr = gain = 0.0
    misses = []
    by_kind: dict[str, list[tuple[bool, float]]] = {}
    for question in questions:
        ranked = list(dict.fromkeys(ranker(question.q)))[:10]  # a key twice (a shared anchor) counts once
        rank = next((i for i, a in enumerate(ranked, 1) if a in question.answers), None)
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        rr += 1 / rank if rank else 0
        gain += ndcg5(ranked, question)
        by_kind.setdefault(question.kind, []).append((rank is not None and rank <= 5, 1 / rank if rank else 0))
        if not rank or rank > 5:
            misses.append(question.q)
    n = len(questions) or 1
    kinds = tuple((kind, len(v), sum(h for h, _ in v) / len(v), sum(m for _, m in v) / len(v))
                  for kind, v in sorted(by_kind.items()))
    return Scores(r1 / n, r5 / n, rr / n, tuple(misses), gain / n, kinds)


def ours(build: Build, meaning: semantic.Meaning | None = None) -> Ranker:
    """A Search as a reader gets it: by words and meaning with a ranker by meaning, by words alone without."""
    search = Search(meaning)

    def rank(q: str) -> list[str]:
        try:
            return [answer_key(c.slug, c.anchor) for c in search.find(build, q, limit=10, now=FAR).citations]
        except SearchError:  # a question of stop words only: the reader is told so, nothing found
            return []

    return rank


def search_page(build: Build, meaning: semantic.Meaning | None = None) -> Ranker:
    """The search page's first page as a reader reads it: each entry's or page's shown paragraphs, in order."""
    search = Search(meaning)

    def rank(q: str) -> list[str]:
        try:
            found = search.find(build, q, limit=10, now=FAR, grouped=True).citations
            return [answer_key(c.slug, c.anchor) for c in found]
        except SearchError:
            return []

    return rank


def meaning_only(build: Build, meaning: semantic.Meaning) -> Ranker:
    """The semantic ranker alone, unfiltered: the nearest blocks by cosine (for comparison, never served)."""
    def rank(q: str) -> list[str]:
        return [answer_key(*key.split("#", 1)) for key, _ in meaning(build.id, q, 10) or []]

    return rank


def by_meaning(build: Build, data_dir: Path) -> semantic.Meaning | None:
    """Embed the build's blocks with the installed model; return the ranker by meaning to search with, or None."""
    config = load_config(path=Path("/nonexistent"), env={}, data_dir=data_dir, semantic=True,
                         model_dir=ROOT / "var" / "model")
    if semantic.embed(config, build) is None:
        return None
    meaning = semantic.load_local(config)
    return None if isinstance(meaning, semantic.WordsOnly) else meaning


def plain_and(build: Build) -> Ranker:
    ix = windex.open_dir(str(build.index_dir))
    parser = qparser.QueryParser("text", ix.schema)

    def rank(q: str) -> list[str]:
        with ix.searcher() as searcher:
            hits = searcher.search(parser.parse(q), limit=10)
            return [answer_key(*h["key"].split("#", 1)) for h in hits]
    return rank


def fts5(build: Build) -> Ranker:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE blocks USING fts5(anchor UNINDEXED, text, tokenize='porter unicode61')")
    db.executemany("INSERT INTO blocks VALUES (?, ?)", blocks(build))

    def rank(q: str) -> list[str]:
        words = re.findall(r"\w+", q)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        rows = db.execute("SELECT anchor FROM blocks WHERE blocks MATCH ? ORDER BY bm25(blocks) LIMIT 10",
                          (match,))
        return [r[0] for r in rows]
    return rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=ROOT / "content")
    parser.add_argument("--questions", type=Path, action="append",
                        help="a question set (default: tests/data/questions.yml, the one ranking rules were "
                             "tuned on, and tests/data/questions-heldout.yml, the one never tuned on)")
    parser.add_argument("--anchors", metavar="SLUG", help="print an entry's blocks and anchors, then stop")
    parser.add_argument("--misses", action="store_true",
                        help="list the questions each ranker misses (of the own set only: the others stay unread)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build = build_content(args.content, Path(tmp))
        if args.anchors:
            for block in build.rendered[args.anchors].blocks:
                print(f"{block.anchor:<50} {block.kind:<5} {block.text[:90]!r}")
            return
        meaning = by_meaning(build, Path(tmp))
        rankers = [("search() words+meaning", ours(build, meaning)),
                   ("search page, words+meaning", search_page(build, meaning)),
                   ("meaning only (no words)", meaning_only(build, meaning))] if meaning else []
        if not meaning:
            print("search() words+meaning: no model installed (make model); only words are ranked below")
        rankers += [("search() words only", ours(build)), ("whoosh plain AND", plain_and(build)),
                    ("sqlite fts5 bm25 (OR)", fts5(build))]
        for path in args.questions or [QUESTIONS, HELDOUT]:
            _report(path, build, rankers, args.misses)
        _report_known(build, meaning)


def _report_known(build: Build, meaning: semantic.Meaning | None) -> None:
    """Print known-item search (six words of a long paragraph find it first) and the off-topic floor."""
    count = len(known_items(build))
    print(f"\nknown-item search: {count} paragraphs of over {KNOWN_CHARS} characters, "
          f"{KNOWN_WORDS} of their words of five letters or more from the middle; first result:")
    for name, ranker, grouped in [("search_blog, words+meaning", meaning, False),
                                  ("search page, words+meaning", meaning, True),
                                  ("search_blog, words only", None, False)]:
        if ranker is None and name.endswith("meaning"):
            continue
        missed = known_item_misses(build, ranker, grouped)
        print(f"  {name:<28} {count - len(missed)} of {count}" + "".join(f"\n    miss: {m}" for m in missed))
    answered = nothing_found(build, meaning)
    print(f"off-topic questions answered \"nothing found\", words+meaning: {len(OFF_TOPIC) - len(answered)} of "
          f"{len(OFF_TOPIC)}" + "".join(f"\n    answered: {q!r}" for q in answered))


def _report(path: Path, build: Build, rankers: list[tuple[str, Ranker]], misses: bool) -> None:
    questions = load_questions(path)
    problems = missing_anchors(build, questions)
    questions = resolve(build, questions)
    print(f"\n{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(questions)} questions over "
          f"{len(blocks(build))} blocks of {len(build.site.entries)} entries and {len(build.site.pages)} pages")
    for problem in problems:
        print("MISSING", problem)
    results = [(name, score(ranker, questions)) for name, ranker in rankers]
    # A question's text is shown only for the set tuned on: whoever reads a held-out or sealed question's
    # miss has read the question, and the set is no longer held out from them.
    shown = path.resolve() == QUESTIONS.resolve()
    for name, result in results:
        print(result.line(name))
        if misses and shown:
            for miss in result.misses:
                print("    miss:", miss)
    on_page = {name: sum(any(a in ranker(q.q) for a in q.answers) for q in questions)
               for name, ranker in rankers[:2] if name.startswith(("search()", "search page"))}
    if len(on_page) == 2:  # all a reader sees on the first page: 10 blocks, or 10 sources' shown blocks
        print("  answer anywhere on the first page: " + ", ".join(f"{n} {c} of {len(questions)}"
                                                             for n, c in on_page.items()))
    name, ranker = rankers[0]
    found, missed = page_hits(ranker, questions, pages_of(build))
    print(f"  page questions whose page is in the top 5, {name}: {found} of {found + len(missed)}"
          + "".join(f"\n    misses: {q!r}" for q in missed if shown))
    kinds = [kind for kind, *_ in results[0][1].kinds]
    if len(kinds) > 1:
        print("  by kind, recall@5 / MRR:" + "".join(f"  {name[:22]:>22}" for name, _ in results))
        for i, kind in enumerate(kinds):
            count = results[0][1].kinds[i][1]
            print(f"  {kind:<16} ({count:>2})" + "".join(
                f"  {r.kinds[i][2]:>11.2f} / {r.kinds[i][3]:.2f}" for _, r in results))


if __name__ == "__main__":
    main()
