"""The semantic ranker at scale: embedding cost, one changed entry, search p99 beside words alone, RSS.

    python -m bench.semantic                 # 1,000 entries; embeds a sample of blocks (a few minutes)
    python -m bench.semantic --full          # embeds every block, as the served site's process does
    python -m bench.semantic --entries 200 --sample 300

The log is bench/corpus.py's (the same as bench.search's). Without --full, the blocks past the sample get
random unit rows: a cosine costs the same whatever the row holds, so latency and memory are real; only
--full's vectors are the model's. Search is timed in this process through the real socket to a real
semantic process, alternating words-only and fused queries, with the results cache emptied each time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

from bench.corpus import write_corpus
from bench.search import queries
from blog import pipeline
from blog.builds import Build
from blog.config import Config, load_config
from blog.index import semantic
from blog.index.results import SearchError
from blog.index.search import Search
from blog.index.semantic import vectors, weights
from blog.index.semantic.encoder import Encoder
from blog.index.semantic.weights import DIMENSIONS
from processes import ROOT, Gunicorn, rss_mib

MODEL = ROOT / "var" / "model"


def _config(content: Path, data: Path) -> Config:
    return load_config(path=Path("/nonexistent"), env={}, content_dir=content, data_dir=data, tor_mode="off",
                       semantic=True, model_dir=MODEL)


def _fake_rest(build: Build, root: Path, encoder: Encoder, sample: int) -> tuple[float, int, int]:
    """Embed `sample` blocks for real (timed); give the rest random unit rows; write the build's file pair."""
    items = vectors.passages(build)
    chosen = random.Random(5).sample(range(len(items)), min(sample, len(items)))
    texts = [items[i].text for i in chosen]
    tokens = encoder.tokens(texts)
    started = time.perf_counter()
    real = encoder.encode(texts)
    seconds = time.perf_counter() - started
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((len(items), DIMENSIONS)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix[chosen] = real
    model_id = encoder.files.model_id
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / f"{build.id}.{model_id}.npy", matrix)
    hashes = [vectors._digest(p.text) for p in items]
    (root / f"{build.id}.{model_id}.json").write_text(json.dumps(
        {"build": build.id, "model": model_id, "keys": [p.key for p in items], "hashes": hashes}))
    return seconds, len(chosen), tokens


def _served_embedding(config: Config, build_id: str, model_id: str) -> float:
    """Start the semantic process as gunicorn's master does; return the seconds until the build's vectors exist."""
    log = config.data_dir / "semantic-full.log"
    env = dict(os.environ, BLOG_DATA_DIR=str(config.data_dir), BLOG_CONTENT_DIR=str(config.content_dir),
               BLOG_MODEL_DIR=str(MODEL), BLOG_SEMANTIC="1", BLOG_TOR_MODE="off")
    started = time.perf_counter()
    with log.open("wb") as out:
        service = subprocess.Popen([sys.executable, "-m", "blog.index.semantic.service", "--parent",
                                    str(os.getpid())], env=env, stderr=out)
    try:
        while vectors.load(config.data_dir / "vectors", build_id, model_id) is None:
            if service.poll() is not None:
                raise SystemExit(f"the semantic process exited: {log.read_text()[-2000:]}")
            time.sleep(1)
        return time.perf_counter() - started
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(10)


def _percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=1000, help="blocks embedded for the cost figure")
    parser.add_argument("--full", action="store_true", help="embed every block (minutes: see docs/search.md)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    model = weights.locate(MODEL)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = write_corpus(tmp / "content", args.entries)
        config = _config(tmp / "content", tmp / "data")
        build = pipeline.publish(config)
        items = vectors.passages(build)
        root = config.data_dir / "vectors"
        cores = len(os.sched_getaffinity(0))
        encoder = Encoder(model, threads=cores)  # as the served process embeds: every core (niced there)
        print(f"N = {args.entries:,} entries, {len(items):,} blocks; model {model.model_id}")
        tokens = encoder.tokens([p.text for p in items])
        if args.full:
            seconds = _served_embedding(config, build.id, model.model_id)
            count = len(items)
            how = "measured whole, by the served site's semantic process"
        else:
            seconds, count, _ = _fake_rest(build, root, encoder, args.sample)
            how = f"over {count:,} blocks sampled, projected"
        per_block = seconds / count
        print(f"  embedding on {cores} core(s): {per_block * 1000:.1f} ms a block ({tokens / len(items):.0f} word "
              f"pieces on average); the whole log {per_block * len(items) / 60:.1f} min ({how}); "
              f"{args.entries * 10:,} entries {per_block * len(items) * 10 / 60:.0f} min")
        paths[len(paths) // 2].write_text(paths[len(paths) // 2].read_text()
                                          + "\nA new closing paragraph on relays and their keys.\n")
        started = time.perf_counter()
        changed = pipeline.publish(config)
        publish_s = time.perf_counter() - started
        done: list[int] = []
        started = time.perf_counter()
        vectors.embed_build(changed, root, encoder, lambda d, t: done.append(t))
        print(f"  one changed entry: {done[-1] if done else 0} block(s) embedded in "
              f"{time.perf_counter() - started:.2f} s (the publish before it: {publish_s:.1f} s)")
        service = subprocess.Popen([sys.executable, "-m", "blog.index.semantic.service", "--parent",
                                    str(os.getpid())], env=dict(os.environ, BLOG_DATA_DIR=str(config.data_dir),
                                    BLOG_CONTENT_DIR=str(config.content_dir), BLOG_MODEL_DIR=str(MODEL),
                                    BLOG_SEMANTIC="1", BLOG_TOR_MODE="off"), stderr=subprocess.DEVNULL)
        try:
            _search_figures(config, changed, args.queries, service.pid)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(10)
        _worker_rss(config)


def _search_figures(config: Config, build: Build, count: int, service_pid: int) -> None:
    deadline = time.monotonic() + 120
    while not Search(semantic.connect(config)).find(build, "relay keys").semantic and time.monotonic() < deadline:
        time.sleep(0.5)
    words_t, both_t = [], []
    words, both = Search(), Search(semantic.connect(config))
    for question in queries(count):
        for search, times in ((words, words_t), (both, both_t)):
            if search is both:
                both.meaning = semantic.connect(config)  # a breaker that has not tripped, for every question
            search.forget_answers()
            started = time.perf_counter()
            try:
                search.find(build, question)
            except SearchError:
                continue
            times.append(time.perf_counter() - started)
    w99, b99 = _percentile(words_t, 0.99), _percentile(both_t, 0.99)
    print(f"  search() over {len(words_t)} queries: words p50 {_percentile(words_t, 0.5):.1f} ms, p99 {w99:.1f} ms; "
          f"words+meaning p50 {_percentile(both_t, 0.5):.1f} ms, p99 {b99:.1f} ms; ratio p99 {b99 / w99:.2f}; "
          f"median extra {statistics.median(b - w for b, w in zip(both_t, words_t, strict=False)) * 1000:.1f} ms")
    print(f"  semantic process RSS (model + this build's vectors): {rss_mib(service_pid):.0f} MiB")


def _worker_rss(config: Config) -> None:
    rss = {}
    for on in ("0", "1"):
        env = {"BLOG_SEMANTIC": on, "BLOG_MODEL_DIR": str(MODEL)}
        with Gunicorn(config.content_dir, config.data_dir, extra_env=env,
                      log_path=config.data_dir.parent / f"gunicorn-{on}.log") as server:
            for question in queries(40):
                try:
                    url = f"{server.url}/search?q={urllib.parse.quote(question)}"
                    subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=False, timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            rss[on] = [rss_mib(pid) for pid in server.worker_pids()]
            helper = [rss_mib(pid) for pid in server.semantic_pids()]
    print(f"  gunicorn worker RSS after 40 searches: words only {', '.join(f'{r:.0f}' for r in rss['0'])} MiB; "
          f"with the ranker {', '.join(f'{r:.0f}' for r in rss['1'])} MiB (its process: "
          f"{', '.join(f'{r:.0f}' for r in helper)} MiB)")


if __name__ == "__main__":
    main()
