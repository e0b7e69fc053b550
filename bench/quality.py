"""Print recall@1, recall@5 and MRR of search() on tests/data/questions.yml, beside two baselines.

    python -m bench.quality                 # the bundled content/
    python -m bench.quality --anchors SLUG  # an entry's blocks and anchors, to fix the YAML after an edit

Baselines over the same blocks (entries, their summaries and update notes, and the standing pages): Whoosh's
plain QueryParser (every word required, BM25), and SQLite FTS5's bm25() with the porter tokenizer (words OR-ed,
since FTS5's implicit AND answers few questions).

A block is named by its anchor, except a summary, whose anchor (`summary`) every entry and page shares: the
question sets name it `summary:<slug>`, and so do the rankers here (answer_key).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from whoosh import index as windex
from whoosh import qparser

from blog import index
from blog.build import Build, make_build
from blog.index.sources import PAGE, parts_of
from blog.render import SUMMARY_ANCHOR

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "tests" / "data" / "questions.yml"
FAR = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
Ranker = Callable[[str], list[str]]


@dataclass(frozen=True)
class Question:
    q: str
    answers: tuple[str, ...]
    no_shared_word: bool = False


@dataclass(frozen=True)
class Scores:
    recall1: float
    recall5: float
    mrr: float
    misses: tuple[str, ...]  # questions with no answer in the top 5

    def line(self, name: str) -> str:
        return f"{name:<28} recall@1 {self.recall1:.3f}  recall@5 {self.recall5:.3f}  MRR {self.mrr:.3f}"


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Read the evaluation set."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # The held-out set (tests/data/questions-heldout.yml) names answers `answers` and its kind `kind`.
    return [Question(str(d["q"]), tuple(d["a"] if "a" in d else d["answers"]),
                     bool(d.get("no_shared_word")) or d.get("kind") == "no_shared_word") for d in data]


def build_content(content_dir: Path, data_dir: Path) -> Build:
    """Render and index a content tree into a data directory."""
    build = make_build(content_dir, data_dir / "builds")
    build.index_dir = index.update_index(build, data_dir / "index")
    return build


def answer_key(slug: str, anchor: str) -> str:
    """Return how the question sets name a block: its anchor, or summary:<slug> for a summary."""
    slug = slug.removeprefix(PAGE)
    return f"{SUMMARY_ANCHOR}:{slug}" if anchor == SUMMARY_ANCHOR else anchor


def blocks(build: Build) -> list[tuple[str, str]]:
    """Return every indexed block (entries, summaries, update notes, pages) as (answer key, text)."""
    return [(answer_key(fields[0], b.anchor), b.text)
            for fields, found in parts_of(build.site, build.rendered) for b in found]


def missing_anchors(build: Build, questions: list[Question]) -> list[str]:
    """Name each question whose answer anchors are not in the build (an entry or page was edited)."""
    known = {key for key, _ in blocks(build)}
    return [f"{q.q!r}: anchor(s) {', '.join(a for a in q.answers if a not in known)} no longer exist"
            for q in questions if any(a not in known for a in q.answers)]


def score(ranker: Ranker, questions: list[Question]) -> Scores:
    """Compute recall@1, recall@5 and MRR (over the top 10) of a ranker."""
    r1 = r5 = rr = 0.0
    misses = []
    for question in questions:
        ranked = ranker(question.q)[:10]
        rank = next((i for i, a in enumerate(ranked, 1) if a in question.answers), None)
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        rr += 1 / rank if rank else 0
        if not rank or rank > 5:
            misses.append(question.q)
    n = len(questions) or 1
    return Scores(r1 / n, r5 / n, rr / n, tuple(misses))


def ours(build: Build) -> Ranker:
    def rank(q: str) -> list[str]:
        try:
            return [answer_key(c.slug, c.anchor) for c in index.search(build, q, limit=10, now=FAR).citations]
        except index.SearchError:  # a question of stop words only: the reader is told so, nothing found
            return []

    return rank


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
    parser.add_argument("--questions", type=Path, default=QUESTIONS,
                        help="the question set (tests/data/questions-heldout.yml: the one never tuned on)")
    parser.add_argument("--anchors", metavar="SLUG", help="print an entry's blocks and anchors, then stop")
    parser.add_argument("--misses", action="store_true", help="list the questions each ranker misses")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build = build_content(args.content, Path(tmp))
        if args.anchors:
            for block in build.rendered[args.anchors].blocks:
                print(f"{block.anchor:<50} {block.kind:<5} {block.text[:90]!r}")
            return
        questions = load_questions(args.questions)
        for problem in missing_anchors(build, questions):
            print("MISSING", problem)
        print(f"{len(questions)} questions over {len(blocks(build))} blocks "
              f"of {len(build.site.entries)} entries and {len(build.site.pages)} pages")
        for name, ranker in (("search()", ours(build)), ("whoosh plain AND", plain_and(build)),
                             ("sqlite fts5 bm25 (OR)", fts5(build))):
            result = score(ranker, questions)
            print(result.line(name))
            if args.misses:
                for miss in result.misses:
                    print("    miss:", miss)


if __name__ == "__main__":
    main()
