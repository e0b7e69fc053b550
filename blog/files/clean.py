"""A file made fit to serve: images re-encoded without their metadata, SVG without script, text checked.

The operator's file is never served as it is. A photo's EXIF carries where it was taken (GPS), the camera's
serial number and the moment it was taken: over Tor, any of them can name the operator. So every image is
decoded and written again with only its pixels, its colour profile and its transparency (Pillow).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from blog.files.model import MAX_PIXELS

__all__ = ["FORMATS", "Cleaned", "Unfit", "clean_image", "clean_text", "metadata"]

FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
EXTENSION = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp"}
JPEG_QUALITY = 90  # when a JPEG's pixels must turn (its EXIF orientation) and its own tables cannot be kept
WEBP_QUALITY = 90  # a lossy WebP is encoded again at this quality (a lossless one stays lossless)

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


class Unfit(Exception):
    """A file the site will not serve: what is wrong with it, and how to fix it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix


@dataclass(frozen=True)
class Cleaned:
    """The bytes to serve, the image's size in pixels (0 for text), and what cleaning removed."""

    data: bytes
    width: int = 0
    height: int = 0
    stripped: tuple[str, ...] = ()


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


def _open(raw: bytes, expected: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unfit("is not an image Pillow can read", "export it again as PNG, JPEG or WebP") from exc
    if image.format != expected:
        right = EXTENSION.get(image.format or "", "")
        fix = f"rename it to end in {right}" if right in (".jpg", ".png", ".webp") else \
            "convert it to PNG, JPEG or WebP"
        raise Unfit(f"is a {image.format} image, not {expected} as its name says", fix)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise Unfit(f"is {width}x{height} pixels, more than {MAX_PIXELS // 1_000_000} million",
                    "scale it down: a page shows it at most 1,600 pixels wide or so")
    if getattr(image, "n_frames", 1) > 1:
        raise Unfit("is animated", "export one frame as a still image")
    return image


def clean_image(raw: bytes, expected: str) -> Cleaned:
    """Return the image written again with only its pixels, colour profile and transparency."""
    image = _open(raw, expected)
    stripped = metadata(image)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise Unfit(f"cannot be decoded ({exc})", "export it again from the program that made it") from exc
    orientation = image.getexif().get(0x0112, 1)
    icc = image.info.get("icc_profile")
    transparency = image.info.get("transparency")
    shown = ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
    image.info = {}
    shown.info = {} if transparency is None else {"transparency": transparency}
    out = io.BytesIO()
    if expected == "JPEG":
        keep = shown is image  # the image's own quantization tables: close to lossless
        shown.save(out, "JPEG", quality="keep" if keep else JPEG_QUALITY, subsampling="keep" if keep else 0,
                   progressive=True, optimize=True, icc_profile=icc, comment=b"", exif=b"")
    elif expected == "PNG":
        shown.save(out, "PNG", icc_profile=icc)
    else:
        lossless = _webp_lossless(raw)
        shown.save(out, "WEBP", lossless=lossless, quality=100 if lossless else WEBP_QUALITY, exact=lossless,
                   icc_profile=icc or "", exif=b"", xmp="")
    return Cleaned(out.getvalue(), shown.width, shown.height, stripped)


def _webp_lossless(raw: bytes) -> bool:
    """Tell whether a WebP file's image is lossless (a VP8L chunk) rather than lossy (VP8)."""
    position = 12
    while position + 8 <= len(raw):
        tag, size = raw[position:position + 4], int.from_bytes(raw[position + 4:position + 8], "little")
        if tag in (b"VP8L", b"VP8 "):
            return tag == b"VP8L"
        position += 8 + size + (size & 1)
    return False


def metadata(image: Image.Image) -> tuple[str, ...]:
    """Return what an opened image carries beside its pixels, as `blog check` names it."""
    found: list[str] = []
    exif = image.getexif()
    if len(exif):
        telling = []
        for (where, tag), what in _TELLING.items():
            if where == "gps":
                hit = _GPS in exif
            else:
                hit = tag in (exif.get_ifd(_EXIF) if where == "exif" else exif)
            if hit and what not in telling:
                telling.append(what)
        found.append(f"EXIF ({', '.join(telling)})" if telling else f"EXIF ({len(exif)} tags)")
    info = image.info
    if info.get("xmp") or info.get("XML:com.adobe.xmp"):
        found.append("XMP")
    applist = getattr(image, "applist", [])
    if "photoshop" in info or any(marker == "APP13" for marker, _ in applist):
        found.append("IPTC")
    if info.get("comment"):
        found.append("comment")
    text = [key for key in getattr(image, "text", {}) if key != "XML:com.adobe.xmp"]
    if text:
        found.append(f"text ({', '.join(sorted(text))})")
    others = sorted({marker for marker, body in applist
                     if marker.startswith("APP") and not body.startswith(_KNOWN_APP)})
    if others:
        found.append(f"{', '.join(others)} segment{'s' if len(others) > 1 else ''}")
    return tuple(found)
