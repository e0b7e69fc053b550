"""all-MiniLM-L6-v2 (served) beside all-mpnet-base-v2 (a candidate): the graph's check, quality, cost, memory.

    make model model-mpnet && python -m bench.model_compare
    python -m bench.model_compare --skip-check      # without the numpy forward pass (a minute less)
    python -m bench.model_compare --fp32            # the candidate's fp32 graph too: what int8 costs it

For each model, over the bundled content/: the served search (words and meaning fused as blog/index/fuse.py
fuses them, nothing retuned) and meaning alone, on the own question set and the held-out one; ms a block
embedded as the semantic process embeds (a session of every core, one block a run, in batches of 64); ms a
question vector (one thread, as the process answers); the 1,000-entry log's embedding time, extrapolated
from ms a block (30,295 blocks, bench/corpus.py); and the PSS of a child process holding what the semantic
process holds between questions (the question session, the 1,000-entry log's vectors) and while it embeds
(the second session too). The candidate's int8 and fp32 graphs are first checked against a forward pass in
numpy over the same weights (bench/mpnet_reference.py). Nothing is fetched here: the models come from
`make model` and `make model-mpnet`, both pinned by SHA-256.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import quality
from blog.index.semantic import mpnet, vectors, weights
from blog.index.semantic.encoder import Encoder
from blog.index.semantic.nearest import Nearest
from blog.index.semantic.weights import ModelFiles
from processes import ROOT, pss_kib


def _fp32(directory: Path) -> ModelFiles:
    files = mpnet.locate(directory)
    return replace(files, graph=directory / mpnet.FP32, model_id=files.model_id + "-fp32")


MODELS = {"all-MiniLM-L6-v2": (weights.locate, ROOT / "var" / "model"),
          "all-mpnet-base-v2": (mpnet.locate, ROOT / "var" / "model-mpnet"),
          "mpnet fp32": (_fp32, ROOT / "var" / "model-mpnet")}
LARGE_LOG_BLOCKS = 30_295  # bench/corpus.py's 1,000 entries
BOUND_MINUTES = 20  # issue "Better answers": the 1,000-entry log embedded in the background within this


class Held(Nearest):
    """Nearest over vectors this bench made and holds, rather than the files a build's vectors live in."""

    def __init__(self, encoder: Encoder, build_id: str, held: vectors.VectorSet) -> None:
        super().__init__(encoder, Path("/nonexistent"))
        self.build_id, self.held = build_id, held

    def vectors_for(self, build_id: str) -> vectors.VectorSet | None:
        return self.held if build_id == self.build_id else None


def check_graph(files: ModelFiles, texts: list[str]) -> None:
    """Print the cosine of each graph's vector with the numpy forward pass's, for a few blocks."""
    from safetensors.numpy import load_file

    from bench import mpnet_reference

    reference = load_file(str(files.directory / "model.safetensors"))
    graphs = {"fp32": replace(files, graph=files.directory / mpnet.FP32), "int8": files}
    encoders = {name: Encoder(f, threads=os.cpu_count() or 1) for name, f in graphs.items()}
    cosines: dict[str, list[float]] = {name: [] for name in graphs}
    for text in texts:
        ids = encoders["int8"].tokenizer.encode(text).ids
        expected = mpnet_reference.embed(reference, ids)
        for name, encoder in encoders.items():
            cosines[name].append(float(encoder.encode([text])[0] @ expected))
    for name, found in cosines.items():
        print(f"  {name} graph against the numpy forward pass, {len(texts)} blocks: cosine min {min(found):.5f}"
              f"  mean {sum(found) / len(found):.5f}")


def embed_timed(files: ModelFiles, texts: list[str]) -> tuple[np.ndarray, float]:
    """Embed as the semantic process does (every core, batches of 64); return the rows and ms a block."""
    encoder = Encoder(files, threads=len(os.sched_getaffinity(0)))
    rows = np.empty((len(texts), files.dimensions), np.float32)
    started = time.perf_counter()
    for start in range(0, len(texts), vectors.BATCH):
        rows[start:start + vectors.BATCH] = encoder.encode(texts[start:start + vectors.BATCH])
    return rows, (time.perf_counter() - started) * 1000 / len(texts)


def interleaved(located: dict[str, ModelFiles], texts: list[str], rounds: int) -> None:
    """Print ms a block for each model, the models taking turns on the same blocks: on a shared machine the
    load moves between two models' runs, and the ratio of turns side by side is the steadier figure."""
    encoders = {name: Encoder(files, threads=len(os.sched_getaffinity(0))) for name, files in located.items()}
    for turn in range(rounds):
        took = {}
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(texts)
            took[name] = (time.perf_counter() - started) * 1000 / len(texts)
        first = next(iter(took.values()))
        print(f"  turn {turn + 1}: " + ", ".join(f"{n} {ms:.1f} ms a block ({ms / first:.1f}x)"
                                                 for n, ms in took.items())
              + f", load average {os.getloadavg()[0]:.1f}")


def measure(name: str, files: ModelFiles, build: quality.Build, sets: list[Path]) -> dict[str, object]:
    """Return one model's figures on the bundled log."""
    items = vectors.passages(build)
    matrix, ms_block = embed_timed(files, [p.text for p in items])
    held = vectors.VectorSet(tuple(p.key for p in items), matrix, files.model_id)
    meaning = Held(Encoder(files, threads=1, arena=False), build.id, held)
    found: dict[str, object] = {"model": name, "blocks": len(items), "ms_block": ms_block,
                                "large_log_minutes": ms_block * LARGE_LOG_BLOCKS / 60_000}
    questions_asked: list[str] = []
    for path in sets:
        questions = quality.resolve(build, quality.load_questions(path))
        questions_asked += [q.q for q in questions]
        for ranker, rank in (("served", quality.ours(build, meaning)),
                             ("meaning", quality.meaning_only(build, meaning))):
            scores = quality.score(rank, questions)
            no_word = [k for k in scores.kinds if k[0] == "no_shared_word"]
            found[f"{path.stem} {ranker}"] = {
                "recall@5": scores.recall5, "mrr": scores.mrr, "recall@1": scores.recall1,
                "no_shared_word recall@5": no_word[0][2] if no_word else None}
        hits, missed = quality.page_hits(quality.ours(build, meaning), questions, quality.pages_of(build))
        found[f"{path.stem} page questions"] = f"{hits} of {hits + len(missed)}"
    known = len(quality.known_items(build))
    found["known items first"] = f"{known - len(quality.known_item_misses(build, meaning, False))} of {known}"
    found["off-topic: nothing found"] = (f"{len(quality.OFF_TOPIC) - len(quality.nothing_found(build, meaning))}"
                                         f" of {len(quality.OFF_TOPIC)}")
    started = time.perf_counter()
    for question in questions_asked:
        meaning.encoder.encode([question])
    found["ms_question"] = (time.perf_counter() - started) * 1000 / len(questions_asked)
    return found


def held_pss(model_dir: Path, locate_name: str) -> dict[str, float]:
    """In this (child) process: hold what the semantic process holds; return its PSS in MiB, idle and embedding."""
    files = MODELS[locate_name][0](model_dir)
    before = pss_kib(os.getpid()) / 1024  # this bench's own imports, before the model
    answering = Encoder(files, threads=1, arena=False)
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((LARGE_LOG_BLOCKS, files.dimensions)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    for question in ("how do I keep the same onion address after a restart", "what does the builder do"):
        np.argsort(-(matrix @ answering.encode([question])[0]))[:10]
    idle = pss_kib(os.getpid()) / 1024
    embedder = Encoder(files, threads=len(os.sched_getaffinity(0)))
    embedder.encode(["a block of a typical length, " * 12] * 8)
    return {"pss_before_model_mib": before, "pss_idle_mib": idle, "pss_embedding_mib": pss_kib(os.getpid()) / 1024,
            "vectors_mib": matrix.nbytes / 2**20}


def _pss_in_child(name: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.model_compare", "--pss", name], capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", type=Path, default=ROOT / "content")
    parser.add_argument("--skip-check", action="store_true", help="skip the numpy forward pass check")
    parser.add_argument("--fp32", action="store_true", help="measure the candidate's fp32 graph too")
    parser.add_argument("--turns", type=int, default=3, help="turns of the side-by-side timing (0: none)")
    parser.add_argument("--pss", metavar="MODEL", help=argparse.SUPPRESS)  # the child process's part
    args = parser.parse_args()
    if args.pss:
        print(json.dumps(held_pss(MODELS[args.pss][1], args.pss)))
        return
    located = {name: locate(directory) for name, (locate, directory) in MODELS.items()
               if args.fp32 or name != "mpnet fp32"}
    sets = [quality.QUESTIONS, quality.HELDOUT]
    with tempfile.TemporaryDirectory() as tmp:
        build = quality.build_content(args.content, Path(tmp))
        if not args.skip_check:
            items = vectors.passages(build)
            print("all-mpnet-base-v2's graphs (weights and tokenizer match the published SHA-256):")
            check_graph(located["all-mpnet-base-v2"], [items[i].text for i in range(0, len(items), len(items) // 6)])
        if args.turns:
            items = vectors.passages(build)
            print(f"ms a block, the models taking turns on every fourth block ({len(items[::4])}):")
            interleaved(located, [p.text for p in items[::4]], args.turns)
        results = [measure(name, files, build, sets) | _pss_in_child(name) for name, files in located.items()]
    _print(results)


def _print(results: list[dict[str, object]]) -> None:
    print(f"\n{'':<52}" + "".join(f"{r['model']:>22}" for r in results))
    for key in results[0]:
        if key == "model":
            continue
        cells = []
        for r in results:
            value = r[key]
            if isinstance(value, dict):
                value = " / ".join("-" if v is None else f"{v:.3f}" for k, v in value.items() if k != "recall@1")
            elif isinstance(value, float):
                value = f"{value:.1f}"
            cells.append(f"{value!s:>22}")
        label = key + (" (r@5 / MRR / no-word r@5)" if isinstance(results[0][key], dict) else "")
        print(f"{label:<52}" + "".join(cells))
    print(f"(the 1,000-entry log's bound: {BOUND_MINUTES} minutes in the background)")


if __name__ == "__main__":
    main()
