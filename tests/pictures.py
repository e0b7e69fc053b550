"""Real pictures for tests: a JPEG that carries what a phone writes (GPS, serial, time), a PNG plot with text chunks."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, PngImagePlugin

PHOTO_COLOUR = (200, 40, 40)  # solid, so a screenshot shows whether the photo was painted
PLOT_COLOUR = (30, 150, 60)
PHOTO_SIZE = (320, 200)
PLOT_SIZE = (300, 180)
SERIAL = "SN-0042-PRIVATE"
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Make="PrivateCam"/></rdf:RDF></x:xmpmeta>')
GPS_IFD, EXIF_IFD = 0x8825, 0x8769


Colour = tuple[int, int, int]


def photo_with_gps(path: Path, size: tuple[int, int] = PHOTO_SIZE, colour: Colour = PHOTO_COLOUR) -> bytes:
    """Write a JPEG carrying a GPS position, a camera serial, a capture time, XMP and a comment; return its bytes."""
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "PrivateCam", "Model 7", "2026:10:25 09:14:00"
    exif.get_ifd(EXIF_IFD)[0xA431] = SERIAL  # BodySerialNumber
    exif.get_ifd(EXIF_IFD)[0x9003] = "2026:10:25 09:14:00"  # DateTimeOriginal
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.5), "E", (13.0, 24.0, 3.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=92, exif=exif, xmp=XMP, comment=b"taken at home")
    return path.read_bytes()


def plot_png(path: Path, size: tuple[int, int] = PLOT_SIZE, colour: Colour = PLOT_COLOUR) -> bytes:
    """Write a PNG plot with the text chunks a plotting library leaves (Software, Author); return its bytes."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    draw.line([(10, size[1] - 10), (size[0] - 10, 10)], fill=(255, 255, 255), width=3)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "a plotting library 3.11")
    info.add_text("Author", "alice@workstation")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG", pnginfo=info)
    return path.read_bytes()


ENTRY = """---
title: "Pictures of the rack"
date: {day}T09:30:00Z
tags: [hardware]
summary: "A photo of the rack and a plot of the latency."
---

The rack, seen from the front:

![The rack, seen from the front, cables on the left](photo.jpg)

Median latency per circuit:

![Latency per circuit, falling over the day](plot.png)

The server block is in [nginx.conf](../../files/nginx.conf).
"""


def add_picture_entry(content_dir: Path, slug: str = "rack-pictures", day: str = "2026-10-25") -> Path:
    """Add a folder entry with a GPS-tagged photo, a PNG plot and a shared config file; return its folder."""
    folder = content_dir / "log" / f"{day}-{slug}"
    photo_with_gps(folder / "photo.jpg")
    plot_png(folder / "plot.png")
    (content_dir / "files").mkdir(exist_ok=True)
    (content_dir / "files" / "nginx.conf").write_text("server {\n    listen 127.0.0.1:8080;\n}\n")
    (folder / "index.md").write_text(ENTRY.format(day=day))
    return folder


def near(pixel: tuple[int, ...], colour: Colour, tolerance: int = 12) -> bool:
    """Tell whether a pixel is the colour, within what JPEG's compression moves it."""
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


Answers = dict[str, tuple[int, str]]  # URL -> (status, Content-Type)


def load_without_script(browser: Any, url: str, shot: Path) -> tuple[list[str], Answers, Image.Image]:
    """Load a page in headless Chromium with JavaScript off; return every URL requested, the answers, a screenshot."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 900, "height": 1600})
    page = context.new_page()
    requests: list[str] = []
    answers: Answers = {}
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: answers.__setitem__(r.url, (r.status, r.headers.get("content-type", ""))))
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)
    shot.parent.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(full_page=True, path=str(shot))
    context.close()
    return requests, answers, Image.open(io.BytesIO(data)).convert("RGB")


def painted(screenshot: Image.Image, colour: Colour, tolerance: int) -> int:
    """Return how many pixels of a screenshot are the colour (an image's solid colour: it was painted)."""
    import numpy  # a full-page screenshot has millions of pixels: counted in numpy, not one by one in Python

    pixels = numpy.asarray(screenshot.convert("RGB"), dtype=numpy.int16)
    return int((numpy.abs(pixels - numpy.array(colour, dtype=numpy.int16)) <= tolerance).all(axis=-1).sum())


def assert_both_pictures_shown(browser: Any, url: str, shot: Path) -> None:
    """Chromium with script off fetches the page, the photo and the plot (3 requests) and paints both images."""
    from urllib.parse import urlsplit

    requests, answers, screenshot = load_without_script(browser, url, shot)
    assert requests[0] == url and len(requests) == 3, requests
    assert {urlsplit(u).hostname for u in requests} == {"127.0.0.1"}
    assert sorted(urlsplit(u).path.rsplit("/", 1)[1] for u in requests[1:]) == ["photo.jpg", "plot.png"]
    for image in requests[1:]:
        assert answers[image][0] == 200 and answers[image][1].startswith("image/"), answers
    for colour, (width, height), tolerance in ((PHOTO_COLOUR, PHOTO_SIZE, 12), (PLOT_COLOUR, PLOT_SIZE, 2)):
        assert painted(screenshot, colour, tolerance) >= 0.8 * width * height, colour
