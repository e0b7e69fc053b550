"""A file made fit to serve: images without their metadata, text checked (SVG: blog/files/svg.py).

The operator's file is never served as it is. A photo's EXIF carries where it was taken (GPS), the camera's
serial number and the moment it was taken: over Tor, any of them can name the operator. So every image is
taken apart (blog/files/formats.py) and put together again from only the parts that draw its pixels, its
colour profile and its transparency; an image whose EXIF says to turn it is decoded, turned and encoded
again (Pillow), since a browser would turn it by the EXIF that goes. This runs in a process of its own,
with bounds of memory and time (blog/files/cleaning_process.py): a damaged file is reported, never a crash.
"""

from __future__ import annotations

import io
import resource
import warnings
from pathlib import Path

from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from blog.files import formats
from blog.files.fileset import MAX_BYTES, MAX_PIXELS, Cleaned, Unfit

__all__ = ["FORMATS", "WORKING_BUDGET", "Cleaned", "Unfit", "address_room", "clean_file", "clean_image", "clean_text",
           "mapped_bytes", "metadata"]

FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
EXTENSION = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp"}
# What cleaning one image may hold at once besides the process itself: decoded copies, a turned copy, a
# progressive JPEG's coefficients. 24 megapixels decoded and turned is 192 MB.
WORKING_BUDGET = 200 * 2**20
_WALK = {"PNG": formats.png, "JPEG": formats.jpeg, "WEBP": formats.webp}
# Bytes a pixel that cleaning holds besides the format's own working set (bench/images.py measures them):
# Pillow's WebP reader keeps two canvases, a copy and the image (16); a turned picture is decoded and turned (8).
_WORKING = {"WEBP": 16, "turned": 8}
_SLACK = 32 * 2**20  # what decoders and encoders allocate beside the pixels (buffers, tables, a zlib stream)
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}  # EXIF orientation -> what shows the picture upright (as ImageOps does)
_QUICK_PNG = 8_000_000  # pixels above which a turned PNG is compressed with less effort
_TURNED_PNG = 16_000_000  # pixels of the largest PNG turned by its EXIF: 1.5 s to decode, turn and encode
_SCALE_DOWN = "scale it down: a page shows it at most 1,600 pixels wide or so"
_DAMAGED = "export it again from the program that made it"
# Pillow's readers raise whatever a damaged file provokes; every one of these means "cannot be decoded".
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
                  UnidentifiedImageError, Image.DecompressionBombError)

# EXIF tags worth naming in what `blog check` reports: (where, tag) -> what it reveals.
_GPS, _EXIF = 0x8825, 0x8769
_TELLING = {
    ("gps", None): "GPS position",
    ("exif", 0xA431): "camera serial",  # BodySerialNumber
    ("exif", 0xA435): "camera serial",  # LensSerialNumber
    ("exif", 0xA430): "owner name",  # CameraOwnerName
    ("ifd0", 0x013B): "owner name",  # Artist
    ("exif", 0x9003): "capture time",  # DateTimeOriginal
    ("exif", 0x9004): "capture time",  # DateTimeDigitized
    ("ifd0", 0x0132): "capture time",  # DateTime
    ("ifd0", 0x010F): "camera make and model",
    ("ifd0", 0x0110): "camera make and model",
    ("ifd0", 0x0131): "software",
    ("exif", 0x927C): "maker notes",
}
_KNOWN_APP = (b"JFIF", b"Adobe", b"ICC_PROFILE", b"Exif", b"http://ns.adobe.com/xap/", b"Photoshop")


def clean_file(raw: bytes, how: str) -> Cleaned:
    """Return the file cleaned as its type says (jpeg, png, webp, svg or text), in this process; raise Unfit.

    The cleaning process (blog/files/cleaning_process.py) calls it within its bounds; nothing else should.
    """
    from blog.files.svg import clean_svg

    if how in FORMATS:
        return clean_image(raw, FORMATS[how])
    if how == "svg":
        return clean_svg(raw)
    return clean_text(raw)


def clean_text(raw: bytes) -> Cleaned:
    """Return a text file as it is, once it is known to be UTF-8 text."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise Unfit(f"is not UTF-8 text (line {line})", "save it as UTF-8, or leave it out") from exc
    if b"\0" in raw:
        raise Unfit("holds NUL bytes: it is not a text file", "link text files only (see docs/files.md)")
    return Cleaned(raw)


def _misnamed(raw: bytes, expected: str, found: str | None) -> Unfit:
    if found is None:
        try:
            with warnings.catch_warnings(), Image.open(io.BytesIO(raw)) as other:
                warnings.simplefilter("ignore")
                found = other.format
        except _DECODE_ERRORS:
            return Unfit(f"is not a {expected} image (nor any image Pillow reads)",
                         "export it again as PNG, JPEG or WebP")
    right = EXTENSION.get(found or "", "")
    fix = f"rename it to end in {right}" if right in (".jpg", ".png", ".webp") else "convert it to PNG, JPEG or WebP"
    return Unfit(f"is a {found} image, not {expected} as its name says", fix)


def _exif(data: bytes) -> Image.Exif | None:
    """Return the EXIF read from its bytes (empty when there are none), or None when they cannot be read."""
    exif = Image.Exif()
    if not data:
        return exif
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "Corrupt EXIF data": unreadable, and it goes either way
            exif.load(data)
            for where in (_EXIF, _GPS):
                exif.get_ifd(where)
    except Exception:  # Pillow's EXIF reader raises whatever the bytes provoke; the EXIF goes either way
        return None
    return exif


def clean_image(raw: bytes, expected: str) -> Cleaned:
    """Return the image put together again from only the parts that draw it; raise Unfit."""
    found = formats.sniff(raw)
    if found != expected:
        raise _misnamed(raw, expected, found)
    layout = _WALK[expected](raw, MAX_PIXELS)
    width, height = layout.width, layout.height
    if width * height > MAX_PIXELS:
        raise Unfit(f"is {width}x{height} pixels, more than {MAX_PIXELS // 1_000_000} million", _SCALE_DOWN)
    image = _open(raw) if expected == "JPEG" else None  # its segments, as Pillow names them
    exif = _exif(layout.exif or (image.info.get("exif") if image is not None else None) or b"")
    orientation = exif.get(0x0112) if exif is not None and expected != "WEBP" else None  # no browser turns a WebP
    turn = _TURNS.get(orientation) if isinstance(orientation, int) else None
    if turn is not None and expected == "PNG" and width * height > _TURNED_PNG:
        raise Unfit(f"is {width}x{height} pixels and its EXIF says to turn it: a PNG that large takes too long "
                    f"to turn and encode again (more than {_TURNED_PNG // 1_000_000} million pixels)",
                    "turn it in an image editor and export it again, or scale it down")
    if turn is not None and layout.deep:
        raise Unfit("is a 16-bit colour PNG whose EXIF says to turn it, which cannot be done without losing "
                    "its depth", "turn the picture itself in an image editor and export it again")
    working = layout.working_bytes + width * height * _WORKING.get(expected if turn is None else "turned", 0)
    if working > WORKING_BUDGET:
        raise Unfit(f"is {width}x{height} pixels: cleaning it would hold {working / 2**20:.0f} MiB, more than "
                    f"{WORKING_BUDGET // 2**20} MiB", _SCALE_DOWN)
    room = address_room()
    if room is not None and working + _SLACK > room:
        raise Unfit(f"is {width}x{height} pixels: cleaning it would hold {working / 2**20:.0f} MiB, more than the "
                    f"{room / 2**20:.0f} MiB the cleaning process may still take", _SCALE_DOWN)
    stripped = metadata(image, layout, exif)
    if turn is None:
        _decode(layout.data, expected, width, height)
        return Cleaned(layout.data, width, height, stripped)
    data = _turned(_open(layout.data), expected, turn)  # the parts kept: no damaged profile, no EXIF to trip on
    if len(data) > MAX_BYTES:
        raise Unfit(f"is {len(data) / 2**20:.1f} MiB once turned upright as its EXIF says, over the "
                    f"{MAX_BYTES // 2**20} MiB a linked file may be", "turn it in an image editor and export it "
                    "again, smaller")
    upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return Cleaned(data, *upright, stripped)


def mapped_bytes() -> int:
    """Return the bytes of address space this process maps now (0 where /proc cannot say)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def address_room() -> int | None:
    """Return the address space this process may still map under its limit (the cleaning process has one)."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    mapped = mapped_bytes()
    return None if limit == resource.RLIM_INFINITY or not mapped else limit - mapped


def _open(raw: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(raw))
    except _DECODE_ERRORS as exc:
        raise Unfit(f"cannot be read ({exc})", _DAMAGED) from exc


def _decode(data: bytes, kind: str, width: int, height: int) -> None:
    """Decode what will be served, to know it is a whole picture (a JPEG at an eighth of its size: cheap)."""
    if kind == "PNG":
        return  # formats.png inflated its picture data whole, to the byte, and checked each row
    try:
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as image:
            warnings.simplefilter("ignore")
            if kind == "JPEG":
                image.draft(None, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except _DECODE_ERRORS as exc:
        raise Unfit(f"cannot be decoded ({exc})", _DAMAGED) from exc


def _turned(image: Image.Image, kind: str, how: Image.Transpose) -> bytes:
    """Return the image turned upright and encoded again: a JPEG with its own tables, a PNG losslessly."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            icc, transparency = image.info.get("icc_profile"), image.info.get("transparency")
            sampling = JpegImagePlugin.get_sampling(image) if kind == "JPEG" else -1
            tables = getattr(image, "quantization", None) or None
            shown = image.transpose(how)
            image.close()  # its pixels go before the encoder takes its share: 96 MB at 24 megapixels
    except _DECODE_ERRORS as exc:
        raise Unfit(f"cannot be decoded ({exc})", _DAMAGED) from exc
    out = io.BytesIO()
    if kind == "JPEG":
        # 4:2:2 turned on its side would be 4:4:0, which Pillow does not write: take 4:2:0
        sampling = 2 if sampling == 1 and how not in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_180,
                                                       Image.Transpose.FLIP_TOP_BOTTOM) else sampling
        shown.save(out, "JPEG", qtables=tables, subsampling=sampling, progressive=True, optimize=True,
                   icc_profile=icc)
    else:
        # zlib's effort 6 takes 1.4 s for 24 megapixels, effort 1 under 0.8 s (bench/images.py): a large picture
        # is encoded fast, and refused if that makes it larger than a linked file may be.
        extra = {"transparency": transparency} if transparency is not None else {}
        level = 6 if shown.width * shown.height <= _QUICK_PNG else 1
        shown.save(out, "PNG", icc_profile=icc, compress_level=level, **extra)
    return out.getvalue()


def metadata(image: Image.Image | None, layout: formats.Layout, exif: Image.Exif | None) -> tuple[str, ...]:
    """Return what an image carries beside its pixels, as `blog check` names it."""
    found: list[str] = []
    if exif is None:
        found.append("EXIF (unreadable)")
    elif len(exif):
        telling = []
        for (where, tag), what in _TELLING.items():
            if where == "gps":
                hit = _GPS in exif
            else:
                hit = tag in (exif.get_ifd(_EXIF) if where == "exif" else exif)
            if hit and what not in telling:
                telling.append(what)
        found.append(f"EXIF ({', '.join(telling)})" if telling else f"EXIF ({len(exif)} tags)")
    info = image.info if image is not None else {}
    if info.get("xmp") or layout.xmp:
        found.append("XMP")
    applist = getattr(image, "applist", [])
    if "photoshop" in info or any(marker == "APP13" for marker, _ in applist):
        found.append("IPTC")
    if info.get("comment"):
        found.append("comment")
    if layout.texts:
        found.append(f"text ({', '.join(sorted(layout.texts))})")
    others = sorted({marker for marker, body in applist
                     if marker.startswith("APP") and not body.startswith(_KNOWN_APP)})
    if others:
        found.append(f"{', '.join(others)} segment{'s' if len(others) > 1 else ''}")
    return (*found, *layout.dropped)
