"""The costliest files the limits admit, and the costly ones an attack sends: what each costs to clean.

Within the limits (2 MiB, 24 megapixels, 100 JPEG scans, the working budget, 16 megapixels for a PNG to
turn): a 24-megapixel JPEG, a progressive one in 4:4:4 with 100 scans, turned ones (decoded, turned and
encoded again), a 16-bit RGBA PNG that inflates to 192 MB, a turned PNG, lossless and lossy WebPs of the
largest size the budget admits, a 2 MiB SVG, a 2 MiB text file.
Beyond them: the issue's 6300x6300 WebP (38 kB), a 691-byte JPEG claiming 6000x6000, a 2 MiB progressive JPEG
of 23,841 scans. Each is cleaned in a fresh cleaning process (blog/files/cleaning_process.py), warmed by a tiny file
first so that the figure is the file's own; its wall time (the fastest and the slowest of the rounds), the
CPU time the process spent on it (what a busy machine does not inflate) and the process's peak resident
memory (VmHWM, the whole process: Python, Pillow, lxml and the file) are read as it answers. `run()` is what
`python -m bench.images --cleaning` prints.
"""

from __future__ import annotations

import io
import logging
import os
import random
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from blog.files import MAX_BYTES
from blog.files.cleaning_process import Cleaner
from blog.files.fileset import Unfit
from tests.damaged import chunk, jpeg_scans

log = logging.getLogger(__name__)

SIZE = (6000, 4000)  # 24 megapixels: MAX_PIXELS
WEBP = (4400, 2970)  # 13.1 megapixels: the largest WebP within the working budget (16 bytes a pixel)


def _saved(image: Image.Image, kind: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def _scene(size: tuple[int, int] = SIZE) -> Image.Image:
    """Gradients, circles and a little noise: a photo's or a screenshot's detail, within 2 MiB when encoded."""
    width, height = size
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rng = np.random.default_rng(27)
    planes = [128 + 100 * np.sin(12 * x + 7 * y), 128 + 100 * np.cos(9 * x * y * 6),
              128 + 90 * np.sin(30 * np.hypot(x - 0.5, y - 0.5))]
    pixels = np.stack([p + rng.normal(0, 2, (height, width)).astype(np.float32) for p in planes], axis=-1)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _turned() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


def _fit(make: Callable[[int], bytes], qualities: range) -> bytes:
    """Return the best quality's file that fits the limit."""
    for quality in qualities:
        data = make(quality)
        if len(data) <= MAX_BYTES:
            return data
    raise RuntimeError("no quality fits the limit")


def _deep_png(size: tuple[int, int] = SIZE) -> bytes:
    """A 16-bit RGBA PNG of the largest size: a gradient, each row like the one above (filter "Up"), 192 MB inflated."""
    width, height = size
    first = b"\0" + np.linspace(0, 65535, width * 4, dtype=">u2").tobytes()
    same = b"\2" + bytes(width * 8)  # no difference from the row above
    stream = zlib.compressobj(9)
    data = stream.compress(first) + b"".join(stream.compress(same) for _ in range(height - 1)) + stream.flush()
    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _plot(size: tuple[int, int] = SIZE) -> Image.Image:
    """A plot: lines and bands on white, what a PNG of this size holds within 2 MiB."""
    width, height = size
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    bands = ((x // 200 + y // 150) % 7 * 30 + 40).astype(np.uint8)
    lines = (np.abs((y - height / 2) - 300 * np.sin(x / 400)) < 4)
    plane = np.where(lines, 0, bands).astype(np.uint8)
    return Image.fromarray(np.stack([plane, 255 - plane, plane // 2 + 100], axis=-1), "RGB")


def _svg() -> bytes:
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="800">']
    rng, size = random.Random(27), 0
    while size < MAX_BYTES - 200:
        part = (f'<rect x="{rng.randrange(1200)}" y="{rng.randrange(800)}" width="9" height="9" '
                f'fill="#{rng.randrange(16**6):06x}"/>')
        parts.append(part)
        size += len(part)
    return ("".join(parts) + "</svg>").encode()


def _liar() -> bytes:
    raw = _saved(Image.new("RGB", (8, 8), "red"), "JPEG")
    frame = raw.index(b"\xff\xc0")
    return raw[:frame + 5] + struct.pack(">HH", 6000, 6000) + raw[frame + 9:]


def within() -> dict[str, tuple[str, bytes]]:
    """Return the costliest files the limits admit, by name: (how to clean, bytes)."""
    scene = _scene()
    turned_size = (5300, 3590)  # progressive and turned: 11 bytes a pixel, the budget's edge
    progressive = _fit(lambda q: _saved(scene, "JPEG", quality=q, progressive=True, subsampling=0), range(60, 5, -5))
    return {
        "jpeg 24 MP baseline": ("jpeg", _fit(lambda q: _saved(scene, "JPEG", quality=q), range(80, 5, -5))),
        "jpeg 24 MP progressive 4:4:4, 100 scans": ("jpeg", jpeg_scans(90)(random.Random(1), progressive)),
        "jpeg 24 MP turned": ("jpeg", _fit(lambda q: _saved(scene, "JPEG", quality=q, exif=_turned()),
                                           range(80, 5, -5))),
        "jpeg 19 MP progressive turned": ("jpeg", _fit(lambda q: _saved(
            scene.resize(turned_size), "JPEG", quality=q, progressive=True, exif=_turned()), range(80, 5, -5))),
        "png 24 MP 16-bit RGBA": ("png", _deep_png()),
        "png 16 MP turned": ("png", _saved(_plot((4900, 3260)), "PNG", exif=_turned())),
        "webp 13 MP lossless": ("webp", _saved(_plot(WEBP), "WEBP", lossless=True, quality=0, method=0)),
        "webp 13 MP lossy": ("webp", _fit(lambda q: _saved(scene.resize(WEBP), "WEBP", quality=q, method=0),
                                          range(60, 0, -10))),
        "svg 2 MiB": ("svg", _svg()),
        "text 2 MiB": ("text", ("a log line, 40 bytes of it, and more\n" * (MAX_BYTES // 37)).encode()),
    }


def beyond() -> dict[str, tuple[str, bytes]]:
    """Return the costly files of the issue (then 5 s and 1.7 GB, 347 MB, 62 s): refused before decoding."""
    scans = jpeg_scans(23_840)(random.Random(1), _saved(_scene((2000, 2000)), "JPEG", quality=30, progressive=True))
    return {
        "webp 6300x6300 lossless (38 kB)": ("webp", _saved(Image.new("RGB", (6300, 6300), (10, 20, 30)), "WEBP",
                                                          lossless=True)),
        "jpeg of 691 bytes claiming 6000x6000": ("jpeg", _liar()),
        "jpeg progressive with 23,841 scans": ("jpeg", scans),
    }


def _cpu_seconds(pid: int | None) -> float:
    """Return the CPU time (user and system) a process has used: its own work, however busy the machine."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_mib(pid: int | None) -> float:
    if pid is None:
        return 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(how: str, data: bytes, rounds: int) -> dict[str, object]:
    """Clean a file `rounds` times, each in a fresh process; return the slowest time and the highest peak."""
    seconds, cpu, peaks, outcome = [], [], [], ""
    for _ in range(rounds):
        with Cleaner() as cleaner:
            cleaner.clean(b"warm\n", "text")
            idle, used = _peak_mib(cleaner.pid), _cpu_seconds(cleaner.pid)
            started = time.perf_counter()
            try:
                cleaned = cleaner.clean(data, how)
                outcome = f"served, {len(cleaned.data) / 2**20:.2f} MiB"
            except Unfit as unfit:
                outcome = f"refused: {unfit.message}"
            seconds.append(time.perf_counter() - started)
            if cleaner.pid is not None:
                cpu.append(_cpu_seconds(cleaner.pid) - used)
            peaks.append(_peak_mib(cleaner.pid) or idle)
    return {"bytes": len(data), "outcome": outcome, "seconds_max": round(max(seconds), 2),
            "seconds_min": round(min(seconds), 2), "cpu_seconds": round(max(cpu, default=0.0), 2),
            "peak_mib": round(max(peaks), 1), "idle_mib": round(idle, 1)}


def run(rounds: int = 3) -> dict[str, object]:
    """Measure every file; return the figures and the worst time and peak within the limits."""
    results: dict[str, object] = {"rounds": rounds}
    for group, files in (("within", within()), ("beyond", beyond())):
        figures = {}
        for name, (how, data) in files.items():
            figures[name] = measure(how, data, rounds)
            log.info("%s: %s", name, figures[name])
        results[group] = figures
    inside = results["within"]
    assert isinstance(inside, dict)
    results["worst_seconds_min"] = max((f["seconds_min"], name) for name, f in inside.items())
    results["worst_seconds_max"] = max((f["seconds_max"], name) for name, f in inside.items())
    results["worst_cpu_seconds"] = max((f["cpu_seconds"], name) for name, f in inside.items())
    results["worst_peak_mib"] = max((f["peak_mib"], name) for name, f in inside.items())
    return results
