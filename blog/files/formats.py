"""An image file taken apart without decoding it: what it claims, what it costs, and its bytes minus metadata.

PNG, JPEG and WebP files are sequences of tagged parts (chunks, segments). Cleaning keeps the parts that
draw the picture (and its colour profile and transparency) and drops the rest: EXIF, XMP, text, comments,
thumbnails, whatever follows the picture's end. The pixels are the operator's own bytes, so the served copy
is never larger than the file and a 16-bit PNG keeps its precision. Walking the parts first also bounds the
work before any decoder runs: the size in pixels, a JPEG's number of scans, a PNG's picture data inflated
to exactly the length its header implies (no more, no less, nothing after it).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from blog.files.fileset import Unfit

__all__ = ["MAX_SCANS", "Layout", "jpeg", "png", "sniff", "webp"]

MAX_SCANS = 100  # libjpeg writes 10 scans for a progressive JPEG, Photoshop 3 to 5; each scan is a pass over it
MAX_PROFILE = 4 * 2**20  # a colour profile larger than this (display profiles are a few kB) is dropped
_BAD_PROFILE = "a damaged colour profile"
_DAMAGED = "export it again from the program that made it"
_CUT = "is cut short (the file ends before its picture does)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Layout:
    """What a file's parts say: its size, what decoding holds in memory, and the file rebuilt without metadata."""

    width: int
    height: int
    data: bytes  # the parts that draw the picture, in their order: the bytes to serve unless the pixels must turn
    working_bytes: int  # what a decoder holds beyond the image itself (a progressive JPEG's coefficients)
    dropped: tuple[str, ...] = ()  # parts dropped that `metadata()` does not name (data after the end, ...)
    progressive: bool = False
    deep: bool = False  # 16 bits a channel in colour: Pillow would read it as 8
    exif: bytes = b""  # a PNG's or a WebP's EXIF (Pillow finds a PNG's after its picture only by decoding it)
    xmp: bool = False  # a PNG or a WebP carried XMP
    texts: tuple[str, ...] = ()  # a PNG's text chunks' keywords (XMP aside)


def sniff(raw: bytes) -> str | None:
    """Return PNG, JPEG or WEBP by the file's first bytes, or None."""
    if raw.startswith(PNG_SIGNATURE):
        return "PNG"
    if raw.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "WEBP"
    return None


def damaged(what: str) -> Unfit:
    return Unfit(f"is damaged: {what}", _DAMAGED)


# --- PNG -----------------------------------------------------------------------------------------------

# Chunks that change how the picture looks; everything else (text, eXIf, tIME, pHYs, private chunks) goes.
_PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"cICP", b"mDCV", b"cLLI",
             b"IDAT", b"IEND"}
_PNG_NAMED = {b"tIME": "modification time"}  # dropped parts worth naming that Pillow's info does not show
_PNG_DEPTHS = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)), 4: (2, (8, 16)), 6: (4, (8, 16))}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_STEP = 1 << 20


def _png_chunks(raw: bytes) -> list[tuple[bytes, int, int]]:
    """Return (type, start, end) of each chunk up to IEND (its whole bytes: length, type, data, checksum)."""
    chunks, position = [], len(PNG_SIGNATURE)
    while True:
        if position + 12 > len(raw):
            raise Unfit(_CUT, _DAMAGED)
        length, kind = struct.unpack(">I4s", raw[position:position + 8])
        end = position + 12 + length
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise damaged(f"a chunk at byte {position} is not a PNG chunk")
        if end > len(raw):
            raise Unfit(_CUT, _DAMAGED)
        if zlib.crc32(raw[position + 4:end - 4]) != int.from_bytes(raw[end - 4:end], "big"):
            raise damaged(f"the checksum of its {kind.decode()} chunk is wrong")
        chunks.append((kind, position, end))
        position = end
        if kind == b"IEND":
            return chunks


def _png_rows(width: int, height: int, bits: int, interlaced: bool) -> list[tuple[int, int]]:
    """Return (rows, bytes a row with its filter byte) of each pass of the picture data."""
    if not interlaced:
        return [(height, 1 + (width * bits + 7) // 8)]
    passes = []
    for x0, y0, dx, dy in _ADAM7:
        columns, rows = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if columns > 0 and rows > 0:
            passes.append((rows, 1 + (columns * bits + 7) // 8))
    return passes


def is_profile(data: bytes) -> bool:
    """Tell whether bytes look like an ICC colour profile: the size its header says, and its signature."""
    return len(data) >= 132 and int.from_bytes(data[:4], "big") == len(data) and data[36:40] == b"acsp"


def _png_profile(data: bytes) -> bool:
    """Tell whether an iCCP chunk holds a profile (inflated to at most MAX_PROFILE bytes)."""
    _name, _, rest = data.partition(b"\0")
    if not rest or rest[0] != 0:
        return False
    stream = zlib.decompressobj()
    try:
        profile = stream.decompress(rest[1:], MAX_PROFILE + 1)
    except zlib.error:
        return False
    return stream.eof and len(profile) <= MAX_PROFILE and is_profile(profile)


class _Rows:
    """Checks inflated picture data as it comes: each row's filter byte (0 to 4), and its exact length."""

    def __init__(self, passes: list[tuple[int, int]]) -> None:
        self.segments, start = [], 0
        for rows, size in passes:
            self.segments.append((start, start + rows * size, size))
            start += rows * size
        self.expected, self.seen = start, 0

    def feed(self, data: bytes) -> None:
        begin, end = self.seen, self.seen + len(data)
        if end > self.expected:
            raise damaged("its picture data is longer than its size says")
        for start, stop, size in self.segments:
            if stop <= begin or start >= end:
                continue
            first = start + -(-(max(begin, start) - start) // size) * size  # the first row start at or after begin
            if first < min(end, stop) and max(data[first - begin:min(end, stop) - begin:size]) > 4:
                raise damaged("a row of its picture has an unknown filter")
        self.seen = end


def _inflate(parts: list[bytes], rows: _Rows) -> None:
    stream = zlib.decompressobj()
    try:
        for part in parts:
            pending = part
            while pending and not stream.eof:
                rows.feed(stream.decompress(pending, _INFLATE_STEP))
                pending = stream.unconsumed_tail
            if stream.eof and (pending or stream.unused_data):
                raise damaged("it holds data after its picture's end")
        rows.feed(stream.flush())
    except zlib.error as exc:
        raise damaged(f"its picture data does not decompress ({exc})") from exc
    if not stream.eof or rows.seen < rows.expected:
        raise Unfit(_CUT, _DAMAGED)


def png(raw: bytes, max_pixels: int) -> Layout:
    """Take a PNG apart: check every chunk and the picture data, keep the chunks that draw it."""
    chunks = _png_chunks(raw)
    kinds = [kind for kind, _, _ in chunks]
    first, start, _ = chunks[0]
    if first != b"IHDR" or start + 25 > len(raw) or int.from_bytes(raw[start:start + 4], "big") != 13:
        raise damaged("it does not start with an IHDR chunk")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", raw[start + 8:start + 21])
    channels, depths = _PNG_DEPTHS.get(colour, (0, ()))
    if depth not in depths or compression or filtering or interlace > 1 or not width or not height:
        raise damaged(f"its header is not a valid PNG header ({width}x{height}, depth {depth}, colour {colour})")
    if width * height > max_pixels:
        return Layout(width, height, b"", 0)  # refused by the caller, which names the size
    if b"acTL" in kinds:
        raise Unfit("is animated", "export one frame as a still image")
    if colour == 3 and b"PLTE" not in kinds:
        raise damaged("it has colours by number but no palette")
    unknown = sorted({kind.decode() for kind in kinds if kind not in _PNG_KEEP and kind[0] & 0x20 == 0})
    if unknown:
        raise damaged(f"it holds chunks no decoder knows ({', '.join(unknown)})")
    doubled = sorted({kind.decode() for kind in (b"IHDR", b"PLTE", b"iCCP", b"tRNS") if kinds.count(kind) > 1})
    if doubled:
        raise damaged(f"it has more than one {', '.join(doubled)} chunk")
    idat = [index for index, kind in enumerate(kinds) if kind == b"IDAT"]
    if not idat or idat != list(range(idat[0], idat[-1] + 1)):
        raise damaged("its picture data is missing or split by other chunks")
    rows = _Rows(_png_rows(width, height, channels * depth, interlace == 1))
    _inflate([raw[s + 8:e - 4] for kind, s, e in chunks if kind == b"IDAT"], rows)
    keep = set(_PNG_KEEP)
    dropped = [_PNG_NAMED[kind] for kind in dict.fromkeys(kinds) if kind in _PNG_NAMED]
    profile = next((raw[s + 8:e - 4] for kind, s, e in chunks if kind == b"iCCP"), None)
    if profile is not None and not _png_profile(profile):
        keep.discard(b"iCCP")
        dropped.append(_BAD_PROFILE)
    kept = PNG_SIGNATURE + b"".join(raw[s:e] for kind, s, e in chunks if kind in keep)
    if chunks[-1][2] < len(raw):
        dropped.append("data after the image's end")
    exif = next((raw[s + 8:e - 4] for kind, s, e in chunks if kind == b"eXIf"), b"")
    keywords = [raw[s + 8:e - 4].split(b"\0", 1)[0].decode("latin-1")
                for kind, s, e in chunks if kind in (b"tEXt", b"zTXt", b"iTXt")]
    texts = tuple(dict.fromkeys(word for word in keywords if word != "XML:com.adobe.xmp"))
    return Layout(width, height, kept, 0, tuple(dropped), deep=depth == 16 and colour != 0, exif=exif,
                  xmp="XML:com.adobe.xmp" in keywords, texts=texts)


# --- JPEG ----------------------------------------------------------------------------------------------

_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive"}  # what browsers show
_OTHER_SOF = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # lossless, hierarchical, arithmetic
_KEEP_SEGMENT = {0xDB, 0xC4, 0xDD}  # quantization and Huffman tables, restart interval
_MARKER = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")  # the next marker after a scan's data (stuffed 0s, restarts)


def _jpeg_frame(body: bytes) -> tuple[int, int, int, int]:
    """Return width, height, components and the sum of each component's sampled share (in 1/(h*v) units)."""
    if len(body) < 6:
        raise damaged("its frame header is too short")
    precision, height, width, count = struct.unpack(">BHHB", body[:6])
    if precision != 8 or not width or not height or count not in (1, 3, 4) or len(body) < 6 + 3 * count:
        raise damaged(f"its frame header is not one browsers read ({width}x{height}, {precision}-bit, "
                      f"{count} components)")
    factors = [(body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count)]
    if any(not h or not v or h > 4 or v > 4 for h, v in factors):
        raise damaged("its frame header has impossible sampling factors")
    most = max(h for h, _ in factors) * max(v for _, v in factors)
    return width, height, count, sum(h * v for h, v in factors) * 64 // most


def jpeg(raw: bytes, max_pixels: int) -> Layout:
    """Take a JPEG apart: keep its tables, frame, scans and colour profile; count the scans before decoding."""
    kept, dropped, position, scans, entropy = [b"\xff\xd8"], [], 2, 0, 0
    profile: list[int] = []  # where the colour profile's parts are in `kept`
    frame: tuple[int, int, int, int] | None = None
    kind = ""
    while True:
        marker = _MARKER.match(raw, position)
        if marker is None:
            if position >= len(raw) - 1:
                raise Unfit(_CUT, _DAMAGED)
            raise damaged(f"byte {position} is not where a JPEG marker should be")
        code, position = marker.group()[-1], marker.end()
        if code == 0xD9:
            kept.append(b"\xff\xd9")
            break
        if position + 2 > len(raw):
            raise Unfit(_CUT, _DAMAGED)
        end = position + int.from_bytes(raw[position:position + 2], "big")
        if end > len(raw) or end < position + 2:
            raise Unfit(_CUT, _DAMAGED) if end > len(raw) else damaged(f"a segment at byte {position} is too short")
        body, segment = raw[position + 2:end], raw[position - 2:end]
        position = end
        if code in _SOF:
            if frame is not None:
                raise damaged("it has two frame headers")
            frame, kind = _jpeg_frame(body), _SOF[code]
            if frame[0] * frame[1] > max_pixels:
                return Layout(frame[0], frame[1], b"", 0)  # refused by the caller, which names the size
            kept.append(segment)
        elif code in _OTHER_SOF or code == 0xCC:
            raise Unfit("is a lossless, hierarchical or arithmetic-coded JPEG, which browsers do not show",
                        "export it again as an ordinary (baseline or progressive) JPEG")
        elif code == 0xDA:
            if frame is None:
                raise damaged("its picture data comes before its frame header")
            scans += 1
            if scans > MAX_SCANS:
                raise Unfit(f"has more than {MAX_SCANS} scans (each one is another pass over the picture)",
                            "save it again as a baseline JPEG, or as progressive with the usual settings")
            if not body or not 1 <= body[0] <= 4 or len(body) != 4 + 2 * body[0]:
                raise damaged("a scan header is not valid")
            data_end = _MARKER.search(raw, position)
            if data_end is None:
                raise Unfit(_CUT, _DAMAGED)
            kept.append(raw[position - len(segment):data_end.start()])
            entropy += data_end.start() - position
            position = data_end.start()
        elif code in _KEEP_SEGMENT or (code == 0xEE and body.startswith(b"Adobe") and len(body) == 12):
            kept.append(segment)  # tables, restart interval, Adobe's colour transform
        elif code == 0xE2 and body.startswith(b"ICC_PROFILE\0") and len(body) > 14:
            profile.append(len(kept))
            kept.append(segment)
        elif 0xE0 <= code <= 0xEF or code == 0xFE:
            continue  # APPn (EXIF, XMP, JFIF thumbnails, IPTC, MPF, ...) and comments: Pillow's info names them
        else:
            raise damaged(f"it holds a marker no browser reads (0x{code:02X})")
    if frame is None or not scans:
        raise damaged("it has no picture data")
    width, height, _count, share = frame
    if entropy * 8 < width * height // 64:  # every 8x8 block takes at least one bit
        raise damaged(f"its header says {width}x{height} pixels but it holds picture data for far fewer")
    if position < len(raw):
        dropped.append("data after the image's end")
    if profile and not is_profile(b"".join(kept[i][18:] for i in sorted(profile, key=lambda i: kept[i][16]))):
        kept = [part for index, part in enumerate(kept) if index not in profile]
        dropped.append(_BAD_PROFILE)
    coefficients = width * height * share // 64 * 2 if kind == "progressive" else 0  # kept whole until the end
    return Layout(width, height, b"".join(kept), coefficients, tuple(dropped), progressive=kind == "progressive")


# --- WebP ----------------------------------------------------------------------------------------------


def _webp_size(kind: bytes, data: bytes) -> tuple[int, int]:
    if kind == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a" and not data[0] & 1:
        return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF
    if kind == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise damaged(f"its {kind.decode().strip()} picture header is not valid")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return kind + len(data).to_bytes(4, "little") + data + b"\0" * (len(data) & 1)


def webp(raw: bytes, max_pixels: int) -> Layout:
    """Take a WebP apart: keep its picture, alpha and colour profile chunks; drop EXIF, XMP and the rest."""
    end = 8 + int.from_bytes(raw[4:8], "little")
    if end > len(raw) or len(raw) < 20:
        raise Unfit(_CUT, _DAMAGED)
    chunks: dict[bytes, bytes] = {}
    order, position = [], 12
    while position < end:
        if position + 8 > end:
            raise damaged("its last chunk is cut in the middle of its header")
        kind, size = raw[position:position + 4], int.from_bytes(raw[position + 4:position + 8], "little")
        if position + 8 + size > end:
            raise Unfit(_CUT, _DAMAGED)
        order.append(kind)
        chunks.setdefault(kind, raw[position + 8:position + 8 + size])
        position += 8 + size + (size & 1)
    if b"ANIM" in chunks or b"ANMF" in chunks:
        raise Unfit("is animated", "export one frame as a still image")
    picture = next((kind for kind in order if kind in (b"VP8 ", b"VP8L")), None)
    if picture is None:
        raise damaged("it holds no picture")
    width, height = _webp_size(picture, chunks[picture])
    if order[0] == b"VP8X":
        header = chunks[b"VP8X"]
        if len(header) < 10:
            raise damaged("its extended header is too short")
        canvas = (int.from_bytes(header[4:7], "little") + 1, int.from_bytes(header[7:10], "little") + 1)
        if canvas != (width, height):
            raise damaged(f"its header says {canvas[0]}x{canvas[1]} but its picture is {width}x{height}")
    elif order[0] != picture:
        raise damaged("it does not start with its picture or an extended header")
    if width * height > max_pixels:
        return Layout(width, height, b"", 0)
    alpha, icc = chunks.get(b"ALPH") if picture == b"VP8 " else None, chunks.get(b"ICCP")
    dropped = ["data after the image's end"] if end < len(raw) else []
    if icc is not None and not is_profile(icc):
        icc = None
        dropped.append(_BAD_PROFILE)
    body = _chunk(picture, chunks[picture])
    if alpha is not None or icc is not None:
        # The alpha flag: an ALPH chunk beside a lossy picture, or the "alpha is used" bit of a lossless one.
        transparent = alpha is not None or (picture == b"VP8L" and chunks[picture][4] & 0x10)
        flags = (0x20 if icc is not None else 0) | (0x10 if transparent else 0)
        extended = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = _chunk(b"VP8X", extended) + (_chunk(b"ICCP", icc) if icc is not None else b"") + \
            (_chunk(b"ALPH", alpha) if alpha is not None else b"") + body
    return Layout(width, height, b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body, 0,
                  tuple(dropped),
                  exif=chunks.get(b"EXIF", b""), xmp=b"XMP " in chunks)
