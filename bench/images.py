"""What an image costs: to clean at build time, in the worst case within the limits; then for a reader over Tor.

`python -m bench.images --cleaning` cleans the costliest files the limits admit (2 MiB, 24 megapixels,
100 JPEG scans: bench/cleaning.py makes them), each in a fresh cleaning process as a build does, and prints
each one's wall time and the process's peak resident memory, the worst of each, and how the costly files an
attack would send (a 6300x6300 WebP, a JPEG lying about its size, 23,841 scans) are turned away.

`python -m bench.images` also builds a copy of the starter log with two entries that show one image each (a plot
as PNG, a photo as JPEG), serves it with the production gunicorn configuration, publishes it as an onion
service on a private Tor network (tests/tornet) and times, on a warm circuit:

- the page alone (what a page without images costs: one request);
- the image fetched after the page on the same kept-alive connection (a browser that reuses it);
- the image fetched on a new connection (a new stream on the same circuit: a browser that opens one).

Each is the median of SAMPLES after one warm-up fetch, next to the same fetches over loopback. The private
network's relays are on 127.0.0.1, so its round trips are the cost of tor's six hops and cell scheduling,
not of the distances of the real Tor network (see docs/performance.md, "Images").
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx2
from PIL import Image, ImageDraw

from bench import cleaning
from processes import ROOT, Gunicorn

log = logging.getLogger(__name__)

SAMPLES = 7


def _plot(path: Path) -> None:
    """A plot as a plotting library writes one: 1200x700, lines on white, about 20 KB as PNG."""
    image = Image.new("RGB", (1200, 700), "white")
    draw = ImageDraw.Draw(image)
    for series, colour in enumerate(((31, 119, 180), (255, 127, 14), (44, 160, 44))):
        points = [(60 + x * 11, 600 - int(200 * (1 + ((x * (series + 3)) % 17) / 17) - 60 * series))
                  for x in range(100)]
        draw.line(points, fill=colour, width=3)
    draw.rectangle((60, 50, 1160, 650), outline="black", width=2)
    image.save(path, "PNG")


def _photo(path: Path) -> None:
    """A photo-like JPEG: 1600x1000 with fine detail everywhere (noise), about 750 KB at quality 85."""
    size = (1600, 1000)
    channels = [Image.linear_gradient("L").resize(size), Image.effect_noise(size, 48).convert("L"),
                Image.radial_gradient("L").resize(size)]
    Image.merge("RGB", channels).save(path, "JPEG", quality=85)


ENTRY = """---
title: "An entry with one picture"
date: 2026-11-20T10:00:00Z
tags: [bench]
summary: "One image, to time what it costs a reader."
---

What the measurement showed:

![The measurement, as a {what}]({name})
"""


KINDS = {"plot": ("plot.png", _plot), "photo": ("photo.jpg", _photo)}


def _site(root: Path) -> Path:
    content = root / "content"
    shutil.copytree(ROOT / "content", content)
    (content / "published.lock").unlink(missing_ok=True)
    for what, (name, make) in KINDS.items():
        folder = content / "log" / f"2026-11-20-{what}"
        folder.mkdir()
        make(folder / name)
        (folder / "index.md").write_text(ENTRY.format(what=what, name=name))
    return content


def _time(client: httpx2.Client, url: str) -> float:
    start = time.perf_counter()
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return (time.perf_counter() - start) * 1000


def _series(proxy: str | None, page: str, image: str) -> dict[str, float]:
    """Time the page, the image after it on the same connection, and the image on a new connection."""
    rows: dict[str, list[float]] = {"page_ms": [], "image_same_connection_ms": [], "image_new_connection_ms": []}
    with httpx2.Client(proxy=proxy, timeout=60, trust_env=False) as client:
        _time(client, page)
        _time(client, image)
        for _ in range(SAMPLES):
            rows["page_ms"].append(_time(client, page))
            rows["image_same_connection_ms"].append(_time(client, image))
            with httpx2.Client(proxy=proxy, timeout=60, trust_env=False) as fresh:
                rows["image_new_connection_ms"].append(_time(fresh, image))
    return {key: round(statistics.median(values), 1) for key, values in rows.items()}


def run() -> dict[str, object]:
    """Serve a site whose entries show one image each, publish it on a private Tor network, time the fetches."""
    from tests.tornet import TorNet

    for noisy in ("stem", "httpx", "httpx2"):  # stem sets its own logger to DEBUG; httpx logs every request
        logging.getLogger(noisy).setLevel(logging.WARNING)
    results: dict[str, object] = {"samples": SAMPLES}
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        with Gunicorn(_site(Path(tmp)), Path(tmp) / "data", workers=2) as app:
            pages = {}
            for what in KINDS:
                html = httpx2.get(f"{app.url}/log/{what}", timeout=30).text
                src = html.split('src="/files/', 1)[1].split('"', 1)[0]
                pages[what] = (f"/log/{what}", f"/files/{src}")
                results[what] = {"page_bytes": len(html.encode()),
                                 "image_bytes": len(httpx2.get(f"{app.url}/files/{src}", timeout=30).content),
                                 "loopback": _series(None, app.url + pages[what][0], app.url + pages[what][1])}
            with TorNet() as net, net.service_controller() as controller:
                service = controller.create_ephemeral_hidden_service(
                    {80: f"127.0.0.1:{app.port}"}, key_type="NEW", key_content="ED25519-V3",
                    await_publication=False)
                net.wait_for_descriptor(controller, timeout=180)
                onion = f"http://{service.service_id}.onion"
                net.fetch_via_socks(onion + "/", timeout=180)
                for what, (page, image) in pages.items():
                    results[what]["tor"] = _series(net.proxy_url, onion + page, onion + image)  # type: ignore[index]
                    log.info("%s: %s", what, results[what])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cleaning", action="store_true", help="only the cleaning costs (no Tor network)")
    parser.add_argument("--rounds", type=int, default=3, help="cleanings of each file; the slowest counts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = {"cleaning": cleaning.run(args.rounds)}
    if not args.cleaning:
        results.update(run())
    print(json.dumps(results, indent=1), flush=True)


if __name__ == "__main__":
    main()
