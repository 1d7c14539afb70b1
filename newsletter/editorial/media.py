"""Images editors upload for news items, made safe to mail to 20,000 people.

Pillow decides what a file is from its bytes (never the name or the type the
browser claims), refuses anything but JPEG, PNG, GIF and WebP, turns it
upright by its EXIF orientation, scales it to at most :data:`MAX_WIDTH`
pixels wide (twice the mail's 600 px column, for sharp phones), and
re-encodes it — a new file without EXIF, GPS position, camera serial numbers
or comments. The result is stored in PostgreSQL under the hash of its bytes
and served from ``/media/<key>``, a URL that mail clients can fetch and that
never changes.

A small file can declare a huge picture (a 191 KB PNG of 7000 x 7000 RGBA
decodes to 196 MB, and every copy on the way costs as much again), so the
memory an upload costs is bounded before anything is decoded:

* the size the header declares is checked first (``Image.open`` reads only
  the header): each side, and the pixels, with a lower limit for formats
  decoded whole than for JPEG;
* a JPEG is decoded at a reduced scale (libjpeg's 1/2, 1/4, 1/8 via
  ``draft``) no larger than it needs for the result; the other formats are
  scaled down before any other copy is made;
* at most :data:`DECODERS` images are decoded at once, in threads of their
  own, whatever the number of uploads in flight;
* after each one, glibc is asked to hand freed memory back to the system
  (``malloc_trim``), which it otherwise keeps in its per-thread arenas.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import io
import re
import unicodedata
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from newsletter.core.db import QUERIES, Database
from newsletter.core.errors import InvalidInput, NotFound
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings
from newsletter.ops.audit import Actor, record

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# JPEG is decoded at a reduced scale, so a camera's full size is fine: an 8K
# photo is 33 MP, a 50 MP phone mode just fits. (A progressive JPEG still
# holds its coefficients at full size while decoding: about 3 bytes a pixel.)
MAX_PIXELS = 50_000_000
# PNG, GIF and WebP are decoded whole, up to 4 bytes a pixel: 16 MP is 64 MB,
# more than any screenshot or poster scan an editor uploads needs.
MAX_PIXELS_DECODED_WHOLE = 16_000_000
MAX_SIDE = 12_000  # a panorama longer than this is no mail picture
DECODERS = 2  # images decoded at once per process; the rest wait their turn
MAX_WIDTH = 1200
MAX_HEIGHT = 3600
JPEG_QUALITY = 85
ACCEPTED = {"JPEG", "PNG", "GIF", "WEBP"}
KEY = re.compile(r"^[0-9a-f]{32}\.(jpg|png)$")
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}
NO_IMAGE = N_("그런 이미지가 없습니다.")
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's bomb guard, process-wide
# Pillow only warns between its limit and twice it: make that a refusal too.
# Set once for the process: catch_warnings() around each decode is not
# thread-safe, and decoders run in threads.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
ORIENTATION = 0x0112
_SIDEWAYS = {5, 6, 7, 8}  # EXIF orientations that swap width and height

_decoders = ThreadPoolExecutor(max_workers=DECODERS, thread_name_prefix="image-decoder")


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` where there is one (Linux): without it, memory
    freed by a decoder thread stays with the process."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _find_malloc_trim()


@dataclass(frozen=True, slots=True)
class StoredImage:
    key: str
    content_type: str
    width: int
    height: int

    def url(self, settings: Settings) -> str:
        return f"{settings.base_url}/media/{self.key}"


@dataclass(frozen=True, slots=True)
class Processed:
    data: bytes
    content_type: str
    width: int
    height: int


def _to_srgb(image: Image.Image) -> Image.Image:
    """Colours as the file meant them, then the embedded profile dropped."""
    profile = image.info.get("icc_profile")
    if not profile:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=image.mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: keep the pixels as they are
    return converted if converted is not None else image


TOO_LARGE = N_(
    "이미지가 너무 큽니다. 가로와 세로는 %(side)s픽셀, 전체는 %(megapixels)s만 화소 이하로 "
    "줄여서 올려 주세요."
)
TOO_LARGE_DECLARED = N_(
    "이미지가 너무 큽니다 (가로 %(width)s × 세로 %(height)s 픽셀). 가로와 세로는 "
    "%(side)s픽셀, 전체는 %(megapixels)s만 화소 이하로 줄여서 올려 주세요."
)


def _too_large(width: int, height: int, limit: int) -> InvalidInput:
    sizes = {"side": f"{MAX_SIDE:,}", "megapixels": f"{limit // 10_000:,}"}  # in 만 (10,000)
    if width and height:
        return InvalidInput(
            TOO_LARGE_DECLARED, field="image", width=f"{width:,}", height=f"{height:,}", **sizes
        )
    return InvalidInput(TOO_LARGE, field="image", **sizes)


def _check_declared_size(opened: Image.Image) -> None:
    """Refuse by the size the header declares, before a single pixel is decoded."""
    width, height = opened.size
    limit = MAX_PIXELS if opened.format == "JPEG" else MAX_PIXELS_DECODED_WHOLE
    if width > MAX_SIDE or height > MAX_SIDE or width * height > limit:
        raise _too_large(width, height, limit)


def _box(opened: Image.Image) -> tuple[int, int]:
    """The bounds before turning upright: a sideways photo fits them swapped."""
    sideways = opened.getexif().get(ORIENTATION) in _SIDEWAYS
    return (MAX_HEIGHT, MAX_WIDTH) if sideways else (MAX_WIDTH, MAX_HEIGHT)


def process(data: bytes) -> Processed:
    """Sniff, check, orient, resize and re-encode an uploaded image (CPU work:
    run it through :func:`process_bounded`)."""
    if not data:
        raise InvalidInput(N_("파일이 비어 있습니다."), field="image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(
            N_("이미지는 %(mb)s MB 이하만 올릴 수 있습니다."),
            field="image",
            mb=MAX_UPLOAD_BYTES // 1024 // 1024,
        )
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.format not in ACCEPTED:
                raise InvalidInput(
                    N_("JPEG, PNG, GIF, WebP 이미지만 올릴 수 있습니다."), field="image"
                )
            _check_declared_size(opened)
            box = _box(opened)
            opened.seek(0)  # an animation: its first frame
            # thumbnail() asks a JPEG's decoder for the smallest scale
            # that still covers the box before it decodes, then shrinks
            # in place: the full-size picture never exists.
            if opened.mode in ("1", "P", "PA"):  # palettes scale badly
                opened.load()
                keep = opened.mode == "PA" or "transparency" in opened.info
                small = opened.convert("RGBA" if keep else "RGB")
            else:
                small = opened
            small.thumbnail(box, Image.Resampling.LANCZOS)
            image = ImageOps.exif_transpose(small)
            image.load()
            # An orientation only found while decoding (PNG's eXIf after
            # the pixels) was not in the box: fit the upright picture too.
            image.thumbnail((MAX_WIDTH, MAX_HEIGHT), Image.Resampling.LANCZOS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard, in open(), before ours could name the size.
        raise _too_large(0, 0, MAX_PIXELS) from None
    except UnidentifiedImageError:
        raise InvalidInput(
            N_("이미지로 읽을 수 없는 파일이거나 너무 큰 이미지입니다 (JPEG, PNG, GIF, WebP)."),
            field="image",
        ) from None
    except (OSError, ValueError, SyntaxError):
        raise InvalidInput(N_("손상된 이미지 파일입니다."), field="image") from None
    image = _to_srgb(image)
    transparent = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    image = image.convert("RGBA" if transparent else "RGB")
    # Pillow's encoders fall back to the image's own info (comment, EXIF, ICC
    # profile, PNG text) when not told otherwise: drop all of it.
    image.info = {}
    out = io.BytesIO()
    # A fresh encoder with no exif=, icc_profile= or comment: nothing but pixels.
    if transparent:
        image.save(out, format="PNG", optimize=True)
        content_type = "image/png"
    else:
        image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        content_type = "image/jpeg"
    return Processed(out.getvalue(), content_type, image.width, image.height)


def _original_name(name: str | None) -> str | None:
    if not name:
        return None
    text = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    return text[:200] or None


def _process_and_give_back(data: bytes) -> Processed:
    try:
        return process(data)
    finally:
        if _malloc_trim is not None:
            _malloc_trim(0)


async def process_bounded(data: bytes) -> Processed:
    """:func:`process` in one of the :data:`DECODERS` threads, memory handed
    back afterwards: six bombs at once cost what two cost, once."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_decoders, _process_and_give_back, data)


async def store(
    db: Database, actor: Actor, data: bytes, *, filename: str | None = None
) -> StoredImage:
    processed = await process_bounded(data)
    digest = hashlib.sha256(processed.data).hexdigest()[:32]
    key = f"{digest}.{EXTENSIONS[processed.content_type]}"
    async with db.transaction() as conn:
        await conn.execute(
            QUERIES.insert_media,
            key,
            processed.content_type,
            processed.width,
            processed.height,
            processed.data,
            _original_name(filename),
            actor.user_id,
        )
        await record(
            conn,
            actor,
            "media.upload",
            f"media:{key}",
            width=processed.width,
            height=processed.height,
            bytes=len(processed.data),
        )
    return StoredImage(key, processed.content_type, processed.width, processed.height)


async def fetch(db: Database, key: str) -> tuple[bytes, str]:
    """``(bytes, content type)`` of a stored image."""
    if not KEY.match(key):
        raise NotFound(NO_IMAGE)
    row = await db.fetchrow("get_media", key)
    if row is None:
        raise NotFound(NO_IMAGE)
    return bytes(row["data"]), row["content_type"]
