"""Write N realistic log entries (headings, ~20 paragraphs of ~80 words, code, lists, tags) with a fixed seed.

    python -m bench.corpus DIR N
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
from pathlib import Path

WORDS = """tor onion service key address relay circuit descriptor bootstrap consensus guard directory torrc
gunicorn worker thread process memory socket port request response header cache index search paragraph
anchor entry build render template flask route blueprint config setting option error warning failure fix
restart reload deploy ansible role task handler debian package install upgrade version python module
function class method test fixture assert timeout signal loop event queue lock file permission mode owner
group user root disk network latency throughput benchmark figure measure segment merge commit writer
reader searcher query term phrase stem token analyzer schema field document score rank highlight snippet
backup restore secret public private certificate domain proxy client server stream connection keepalive
log line message trace debug output exit code status pid child parent fork daemon service unit journal
""".split()
GLUE = "the a of to and in that is it for on with as was at by this from but not be are have which".split()
IDENTS = ["HiddenServicePort", "ADD_ONION", "launch_tor_with_config", "compound=False", "SocksPort",
          "gunicorn.conf.py", "worker_class", "ControlPort", "HiddenServiceDir", "max_requests",
          "create_ephemeral_hidden_service", "DisableNetwork", "keepalive", "os.replace", "fsync"]
TAGS = [f"t{i}" for i in range(20)] + ["tor", "onion", "gunicorn", "whoosh", "debian", "ansible", "python"]


def _vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ren", "sto", "vel", "dar", "pi", "qu", "zen", "tri", "bo", "sal", "ni"]
    made = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size)}
    return WORDS + sorted(made)


def _sentence(rng: random.Random, vocab: list[str], weights: list[float], words: int) -> str:
    picked = rng.choices(vocab, cum_weights=weights, k=words)
    out = [w if rng.random() > 0.35 else f"{rng.choice(GLUE)} {w}" for w in picked]
    return " ".join(out).capitalize() + "."


def _entry(rng: random.Random, vocab: list[str], weights: list[float], number: int, day: dt.date) -> str:
    title = " ".join(rng.choices(vocab[:200], k=5)).capitalize()
    tags = sorted(set(rng.choices(TAGS, k=3)))
    parts = []
    for p in range(20):
        if p % 5 == 0:
            parts.append("## " + " ".join(rng.choices(vocab[:300], k=4)).capitalize())
        sentences = [_sentence(rng, vocab, weights, rng.randint(10, 16)) for _ in range(6)]
        if rng.random() < 0.3:
            sentences.append(f"The setting `{rng.choice(IDENTS)}` matters here.")
        parts.append(" ".join(sentences))
        if p in (6, 14):
            lines = [f"{rng.choice(IDENTS)} {rng.randint(1, 9000)} {' '.join(rng.choices(vocab[:200], k=3))}"
                     for _ in range(4)]
            parts.append("```console\n" + "\n".join(lines) + "\n```")
        if p == 10:
            parts.append("\n".join(f"- {_sentence(rng, vocab, weights, 8)}" for _ in range(3)))
    return (f'---\ntitle: "{title} {number}"\ndate: {day.isoformat()}T12:00:00Z\ntags: [{", ".join(tags)}]\n'
            f'summary: "Entry {number}."\n---\n\n' + "\n\n".join(parts) + "\n")


def write_corpus(root: Path, count: int, seed: int = 7) -> list[Path]:
    """Write `count` entries under root/log and return their paths."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    weights = list(itertools.accumulate(1.0 / (rank + 1) ** 1.07 for rank in range(len(vocab))))  # Zipf-like
    (root / "log").mkdir(parents=True, exist_ok=True)
    (root / "pages").mkdir(exist_ok=True)
    start = dt.date(2015, 1, 1)
    paths = []
    for number in range(count):
        day = start + dt.timedelta(days=number * 3650 // max(count, 1))
        path = root / "log" / f"{day.isoformat()}-entry-{number:05d}.md"
        path.write_text(_entry(rng, vocab, weights, number, day), encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    write_corpus(args.root, args.count)


if __name__ == "__main__":
    main()
