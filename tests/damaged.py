"""Damaged and hostile pictures, made from real Pillow files: the fuzz's input (tests/test_fuzz.py) and the bench's.

`damaged(seed)` returns a few hundred (name, bytes) pairs, the same ones for the same seed: PNG, JPEG,
WebP and SVG files as Pillow (or, for what Pillow cannot write, zlib by hand) makes them, with metadata,
then truncated, bit-flipped, overwritten, given garbage EXIF/ICC/XMP/text, wrong checksums, dimensions that
lie, parts missing or doubled, data after their end, and the costly kinds: decompression bombs, thousands
of JPEG scans, a 6300x6300 WebP.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator

from PIL import Image, ImageCms, ImageDraw

from tests.pictures import GPS_IFD, XMP

Mutation = Callable[[random.Random, bytes], bytes]
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0131] = "PrivateCam", "an editor 1.0"
    exif.get_ifd(GPS_IFD)[1] = "N"
    if orientation != 1:
        exif[0x0112] = orientation
    return exif


def _scene(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A picture with edges, gradients and some noise: what a screenshot or a photo has."""
    image = Image.merge("RGB", [Image.linear_gradient("L").resize(size), Image.effect_noise(size, 30).convert("L"),
                                Image.radial_gradient("L").resize(size)])
    ImageDraw.Draw(image).rectangle((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=(250, 20, 20))
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(size))
    return image.convert(mode) if mode not in ("RGB", "RGBA") else image


def _save(image: Image.Image, kind: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    """Return one PNG chunk with its checksum."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_by_hand(width: int, height: int, colour: int, depth: int, interlace: bool = False) -> bytes:
    """A PNG Pillow cannot write (16-bit colour, interlaced): a gradient, filter 0 on every row."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    step = depth // 8

    def row(y: int, xs: range) -> bytes:
        values = bytearray()
        for x in xs:
            for c in range(channels):
                value = ((x * 997 + y * 131 + c * 4099) * 37) % (1 << depth)
                values += value.to_bytes(step, "big")
        return b"\0" + bytes(values)

    if interlace:
        passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
        raw = b"".join(row(y, range(x0, width, dx)) for x0, y0, dx, dy in passes if x0 < width
                       for y in range(y0, height, dy))
    else:
        raw = b"".join(row(y, range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlace))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def bases() -> dict[str, tuple[str, bytes]]:
    """Return well-formed files with metadata, by name: (extension, bytes)."""
    size, small = (96, 64), (40, 30)
    plot = _scene(size)
    info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
    info.add_text("Software", "a plotting library")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    found = {
        "png-rgb": ("png", _save(plot, "PNG", pnginfo=info, exif=_exif(), icc_profile=ICC)),
        "png-rgba": ("png", _save(_scene(size, "RGBA"), "PNG", exif=_exif())),
        "png-palette": ("png", _save(plot.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=3)),
        "png-grey16": ("png", _save(_scene(small).convert("I;16"), "PNG")),
        "png-rgb16": ("png", png_by_hand(*small, colour=2, depth=16)),
        "png-interlaced": ("png", png_by_hand(*small, colour=6, depth=8, interlace=True)),
        "png-turned": ("png", _save(_scene(small), "PNG", exif=_exif(6))),
        "jpeg-baseline": ("jpg", _save(plot, "JPEG", quality=85, exif=_exif(), xmp=XMP, icc_profile=ICC,
                                       comment=b"taken at home")),
        "jpeg-progressive": ("jpg", _save(plot, "JPEG", quality=80, progressive=True, exif=_exif())),
        "jpeg-grey": ("jpg", _save(plot.convert("L"), "JPEG", quality=80)),
        "jpeg-cmyk": ("jpg", _save(plot.convert("CMYK"), "JPEG", quality=80)),
        "jpeg-turned": ("jpg", _save(plot, "JPEG", quality=85, exif=_exif(6))),
        "webp-lossy": ("webp", _save(plot, "WEBP", quality=70, exif=_exif(), xmp=XMP, icc_profile=ICC)),
        "webp-lossless": ("webp", _save(_scene(size, "RGBA"), "WEBP", lossless=True, exif=_exif())),
        "webp-alpha": ("webp", _save(_scene(size, "RGBA"), "WEBP", quality=70)),
    }
    return found


SVG = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
       b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="120" '
       b'height="60" viewBox="0 0 120 60"><!-- made by a plotting library -->\n'
       b'<metadata>alice</metadata><rect width="120" height="60" fill="#1e963c"/>\n'
       b'<a xlink:href="https://example.org/"><text x="4" y="30">a label</text></a></svg>\n')


# --- mutations: each takes the random source and a well-formed file, returns it damaged -----------------

def truncate(rng: random.Random, raw: bytes) -> bytes:
    return raw[:rng.randrange(1, len(raw))]


def flip_bits(count: int) -> Mutation:
    def flip(rng: random.Random, raw: bytes) -> bytes:
        data = bytearray(raw)
        for _ in range(count):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    return flip


def overwrite(rng: random.Random, raw: bytes) -> bytes:
    start = rng.randrange(len(raw))
    return raw[:start] + rng.randbytes(min(64, len(raw) - start)) + raw[start + 64:]


def append_junk(rng: random.Random, raw: bytes) -> bytes:
    return raw + b"PK\x03\x04" + rng.randbytes(200)  # a zip after the picture, as some phones append a video


def _png_parts(raw: bytes) -> list[tuple[bytes, bytes]]:
    parts, position = [], 8
    while position + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[position:position + 8])
        parts.append((kind, raw[position + 8:position + 8 + length]))
        position += 12 + length
    return parts


def _png_join(parts: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(kind, data) for kind, data in parts)


def png_insert(kind: bytes, body: Callable[[random.Random], bytes]) -> Mutation:
    """Put a chunk (correct checksum, garbage inside) right after IHDR."""
    def insert(rng: random.Random, raw: bytes) -> bytes:
        parts = _png_parts(raw)
        return _png_join([parts[0], (kind, body(rng)), *parts[1:]])
    return insert


def png_header(width: int, height: int) -> Mutation:
    def lie(rng: random.Random, raw: bytes) -> bytes:
        parts = _png_parts(raw)
        parts[0] = (b"IHDR", struct.pack(">II", width, height) + parts[0][1][8:])
        return _png_join(parts)
    return lie


def png_wrong_checksum(rng: random.Random, raw: bytes) -> bytes:
    parts = _png_parts(raw)
    index = rng.randrange(len(parts))
    position = 8 + sum(12 + len(data) for _, data in parts[:index]) + 8 + len(parts[index][1])
    return raw[:position] + bytes([raw[position] ^ 0xFF]) + raw[position + 1:]


def png_without(kind: bytes) -> Mutation:
    return lambda rng, raw: _png_join([part for part in _png_parts(raw) if part[0] != kind])


def png_split_idat(rng: random.Random, raw: bytes) -> bytes:
    parts = _png_parts(raw)
    index = next(i for i, part in enumerate(parts) if part[0] == b"IDAT")
    data = parts[index][1]
    half = len(data) // 2
    return _png_join([*parts[:index], (b"IDAT", data[:half]), (b"tEXt", b"a\0b"), (b"IDAT", data[half:]),
                      *parts[index + 1:]])


def png_extra_data(rng: random.Random, raw: bytes) -> bytes:
    """Picture data that decompresses to more rows than the header says (a payload hidden after the picture)."""
    parts = _png_parts(raw)
    index = next(i for i, part in enumerate(parts) if part[0] == b"IDAT")
    pixels = zlib.decompress(b"".join(data for kind, data in parts if kind == b"IDAT"))
    rest = [part for part in parts[index:] if part[0] != b"IDAT"]
    return _png_join([*parts[:index], (b"IDAT", zlib.compress(pixels + b"\0" + rng.randbytes(300))), *rest])


@functools.cache
def _bomb() -> bytes:
    header = struct.pack(">IIBBBBB", 4800, 4800, 16, 6, 0, 0, 0)
    data = zlib.compress(b"\0" * (4800 * (1 + 4800 * 8)), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def png_bomb(rng: random.Random, raw: bytes) -> bytes:
    """A 4800x4800 16-bit RGBA picture of zeros: 184 MB inflated from 180 kB, within the limits."""
    return _bomb()


def _jpeg_segments(raw: bytes) -> list[bytes]:
    """Split a JPEG into its segments, each scan with its data; the last is EOI."""
    parts, position = [raw[:2]], 2
    while position < len(raw):
        code = raw[position + 1]
        if code == 0xD9:
            parts.append(raw[position:])
            break
        end = position + 2 + int.from_bytes(raw[position + 2:position + 4], "big")
        if code == 0xDA:
            while not (raw[end] == 0xFF and raw[end + 1] not in (0, *range(0xD0, 0xD8))):
                end += 1
        parts.append(raw[position:end])
        position = end
    return parts


def segment(code: int, body: bytes) -> bytes:
    return bytes([0xFF, code]) + (len(body) + 2).to_bytes(2, "big") + body


def jpeg_insert(code: int, body: Callable[[random.Random], bytes]) -> Mutation:
    return lambda rng, raw: raw[:2] + segment(code, body(rng)) + raw[2:]


def jpeg_frame(width: int, height: int, precision: int = 8) -> Mutation:
    def lie(rng: random.Random, raw: bytes) -> bytes:
        parts = _jpeg_segments(raw)
        index = next(i for i, part in enumerate(parts) if part[1] in (0xC0, 0xC2))
        frame = parts[index]
        parts[index] = frame[:4] + bytes([precision]) + struct.pack(">HH", height, width) + frame[9:]
        return b"".join(parts)
    return lie


def jpeg_without(code: int) -> Mutation:
    return lambda rng, raw: b"".join(part for part in _jpeg_segments(raw) if part[1:2] != bytes([code]))


def jpeg_scans(count: int) -> Mutation:
    """A progressive JPEG's last refinement scan (with its tables) repeated: each is another pass."""
    def repeat(rng: random.Random, raw: bytes) -> bytes:
        parts = _jpeg_segments(raw)
        scans = [i for i, part in enumerate(parts) if part[1] == 0xDA]
        if not scans:
            return raw
        last = scans[-1]
        tables = b"".join(part for part in parts[scans[-2] + 1:last] if part[1] == 0xC4) if len(scans) > 1 else b""
        header = parts[last][:4 + int.from_bytes(parts[last][2:4], "big") - 2]
        return b"".join(parts[:-1]) + (tables + header) * count + parts[-1]
    return repeat


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(kind + len(data).to_bytes(4, "little") + data + b"\0" * (len(data) & 1) for kind, data in chunks)
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def _webp_parts(raw: bytes) -> list[tuple[bytes, bytes]]:
    parts, position = [], 12
    while position + 8 <= len(raw):
        size = int.from_bytes(raw[position + 4:position + 8], "little")
        parts.append((raw[position:position + 4], raw[position + 8:position + 8 + size]))
        position += 8 + size + (size & 1)
    return parts


def webp_insert(kind: bytes, body: Callable[[random.Random], bytes]) -> Mutation:
    def insert(rng: random.Random, raw: bytes) -> bytes:
        parts = _webp_parts(raw)
        if parts[0][0] != b"VP8X":
            return raw
        return _riff([*parts, (kind, body(rng))])
    return insert


def webp_replace(kind: bytes, body: Callable[[random.Random], bytes]) -> Mutation:
    """Put garbage in place of a chunk's data (an EXIF block the flags announce, as a damaged export has)."""
    return lambda rng, raw: _riff([(k, body(rng) if k == kind else data) for k, data in _webp_parts(raw)])


def webp_canvas(width: int, height: int) -> Mutation:
    def lie(rng: random.Random, raw: bytes) -> bytes:
        parts = _webp_parts(raw)
        if parts[0][0] != b"VP8X":
            return raw
        header = parts[0][1]
        parts[0] = (b"VP8X", header[:4] + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
        return _riff(parts)
    return lie


def riff_size(rng: random.Random, raw: bytes) -> bytes:
    return raw[:4] + rng.choice([0, 4, 2**32 - 1, len(raw) * 2]).to_bytes(4, "little") + raw[8:]


def _garbage(size: int) -> Callable[[random.Random], bytes]:
    return lambda rng: rng.randbytes(size)


def _tiff_garbage(rng: random.Random) -> bytes:
    return b"Exif\0\0II*\0" + rng.randbytes(40)


COMMON: list[tuple[str, Mutation]] = [
    *[(f"trunc{i}", truncate) for i in range(6)],
    *[(f"flip{n}-{i}", flip_bits(n)) for n in (1, 8, 64) for i in range(3)],
    *[(f"overwrite{i}", overwrite) for i in range(3)],
    ("junk-after", append_junk),
]
PNG: list[tuple[str, Mutation]] = [
    ("exif-garbage", png_insert(b"eXIf", _garbage(40))),
    ("exif-tiff-garbage", png_insert(b"eXIf", lambda rng: b"MM\0*" + rng.randbytes(60))),
    ("icc-garbage", png_insert(b"iCCP", lambda rng: b"icc\0\0" + rng.randbytes(80))),
    ("icc-bomb", png_insert(b"iCCP", lambda rng: b"icc\0\0" + zlib.compress(b"\0" * 2**24, 9))),
    ("xmp-garbage", png_insert(b"iTXt", lambda rng: b"XML:com.adobe.xmp\0\0\0\0\0" + rng.randbytes(80))),
    ("ztxt-garbage", png_insert(b"zTXt", lambda rng: b"Comment\0\0" + rng.randbytes(50))),
    ("text-huge", png_insert(b"tEXt", lambda rng: b"Comment\0" + b"x" * 1_500_000)),
    ("private-chunk", png_insert(b"prVt", _garbage(30))),
    ("critical-unknown", png_insert(b"CRIT", _garbage(30))),
    ("animated", png_insert(b"acTL", lambda rng: struct.pack(">II", 2, 0))),
    *[(f"wrong-crc{i}", png_wrong_checksum) for i in range(3)],
    ("dims-bigger", png_header(200, 200)), ("dims-smaller", png_header(10, 10)), ("dims-zero", png_header(0, 64)),
    ("dims-huge", png_header(60000, 60000)), ("dims-over", png_header(2**31, 2)),
    ("no-iend", png_without(b"IEND")), ("no-idat", png_without(b"IDAT")), ("no-plte", png_without(b"PLTE")),
    ("split-idat", png_split_idat), ("extra-rows", png_extra_data), ("bomb", png_bomb),
    ("double-ihdr", lambda rng, raw: _png_join([_png_parts(raw)[0], *_png_parts(raw)])),
]
JPEG: list[tuple[str, Mutation]] = [
    ("exif-garbage", jpeg_insert(0xE1, _tiff_garbage)),
    ("exif-short", jpeg_insert(0xE1, lambda rng: b"Exif\0\0MM")),
    ("icc-garbage", jpeg_insert(0xE2, lambda rng: b"ICC_PROFILE\0\x01\x01" + rng.randbytes(100))),
    ("xmp-garbage", jpeg_insert(0xE1, lambda rng: b"http://ns.adobe.com/xap/1.0/\0" + rng.randbytes(100))),
    ("iptc-garbage", jpeg_insert(0xED, lambda rng: b"Photoshop 3.0\0" + rng.randbytes(60))),
    ("mpf-garbage", jpeg_insert(0xE2, lambda rng: b"MPF\0" + rng.randbytes(60))),
    ("adobe-garbage", jpeg_insert(0xEE, lambda rng: b"Adobe" + rng.randbytes(7))),
    ("dims-bigger", jpeg_frame(4000, 4000)), ("dims-zero", jpeg_frame(0, 64)), ("dims-huge", jpeg_frame(6000, 6000)),
    ("twelve-bit", jpeg_frame(96, 64, precision=12)),
    ("no-eoi", lambda rng, raw: raw[:-2]), ("no-sos", jpeg_without(0xDA)), ("no-dqt", jpeg_without(0xDB)),
    ("no-dht", jpeg_without(0xC4)),
    ("length-zero", lambda rng, raw: raw[:2] + b"\xff\xe1\x00\x00" + raw[2:]),
    ("arithmetic", lambda rng, raw: raw.replace(b"\xff\xc0", b"\xff\xc9", 1).replace(b"\xff\xc2", b"\xff\xca", 1)),
    ("scans-200", jpeg_scans(200)), ("scans-3000", jpeg_scans(3000)),
]
WEBP: list[tuple[str, Mutation]] = [
    ("exif-garbage", webp_insert(b"EXIF", _garbage(40))),
    ("exif-tiff-garbage", webp_insert(b"EXIF", lambda rng: b"II*\0" + rng.randbytes(40))),
    ("icc-garbage", webp_insert(b"ICCP", _garbage(60))),
    ("xmp-garbage", webp_insert(b"XMP ", _garbage(60))),
    ("anim", webp_insert(b"ANIM", _garbage(6))),
    ("canvas-lies", webp_canvas(4000, 4000)), ("canvas-huge", webp_canvas(16000, 16000)),
    *[(f"riff-size{i}", riff_size) for i in range(3)],
]
SVG_CASES: dict[str, bytes] = {
    "entities": b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
                b'<svg xmlns="http://www.w3.org/2000/svg"><text>&b;&b;</text></svg>',
    "external-entity": b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>',
    "undeclared-entity": SVG.replace(b"a label", b"a &nbsp; label"),
    "tab-script": SVG.replace(b'xlink:href="https://example.org/"', b'xlink:href="java&#9;script:alert(1)"'),
    "newline-script": SVG.replace(b'xlink:href="https://example.org/"', b'xlink:href="java&#10;script:alert(1)"'),
    "nul-script": SVG.replace(b'xlink:href="https://example.org/"', b'xlink:href="&#1;javascript:alert(1)"'),
    "deep": b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * 300 + b"</g>" * 300 + b"</svg>",
    "too-deep": b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * 100_000 + b"</g>" * 100_000 + b"</svg>",
    "not-utf8": SVG.replace(b"a label", b"a \xff\xfe label"),
    "html-root": b"<html><body><script>alert(1)</script></body></html>",
    "empty": b"",
}


def damaged(seed: int = 27) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, bytes) for every damaged picture, the same ones for the same seed."""
    rng = random.Random(seed)
    table = {"png": PNG, "jpg": JPEG, "webp": WEBP}
    for name, (extension, raw) in bases().items():
        for what, mutation in [*COMMON, *table[extension]]:
            yield f"{name}-{what}.{extension}", mutation(rng, raw)
    yield "webp-6300.webp", _save(Image.new("RGB", (6300, 6300), (10, 20, 30)), "WEBP", lossless=True)
    for what, mutation in COMMON:
        yield f"svg-{what}.svg", mutation(rng, SVG)
    for what, raw in SVG_CASES.items():
        yield f"svg-{what}.svg", raw
