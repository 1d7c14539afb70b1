"""Images editors upload for news items, made safe to mail to 20,000 people.

Pillow decides what a file is from its bytes (never the name or the type the
browser claims), refuses anything but JPEG, PNG, GIF and WebP and anything
with more pixels than a photo needs (decompression bombs), turns it upright
by its EXIF orientation, scales it to at most :data:`MAX_WIDTH` pixels wide
(twice the mail's 600 px column, for sharp phones), and re-encodes it — a
new file without EXIF, GPS position, camera serial numbers or comments. The
result is stored in PostgreSQL under the hash of its bytes and served from
``/media/<key>``, a URL that mail clients can fetch and that never changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from newsletter.core.db import QUERIES, Database
from newsletter.core.errors import InvalidInput, NotFound
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings
from newsletter.ops.audit import Actor, record

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 50_000_000  # an 8K photo is 33 MP; a bomb claims billions
MAX_WIDTH = 1200
MAX_HEIGHT = 3600
JPEG_QUALITY = 85
ACCEPTED = {"JPEG", "PNG", "GIF", "WEBP"}
KEY = re.compile(r"^[0-9a-f]{32}\.(jpg|png)$")
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}
NO_IMAGE = N_("그런 이미지가 없습니다.")
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's bomb guard, process-wide


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


def process(data: bytes) -> Processed:
    """Sniff, check, orient, resize and re-encode an uploaded image (CPU work:
    run it in a thread)."""
    if not data:
        raise InvalidInput(N_("파일이 비어 있습니다."), field="image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(
            N_("이미지는 %(mb)s MB 이하만 올릴 수 있습니다."),
            field="image",
            mb=MAX_UPLOAD_BYTES // 1024 // 1024,
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns (instead of refusing) between the limit and twice it.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.format not in ACCEPTED:
                    raise InvalidInput(
                        N_("JPEG, PNG, GIF, WebP 이미지만 올릴 수 있습니다."), field="image"
                    )
                opened.seek(0)  # an animation: its first frame
                image = ImageOps.exif_transpose(opened)
                image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
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
    image.thumbnail((MAX_WIDTH, MAX_HEIGHT), Image.Resampling.LANCZOS)
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


async def store(
    db: Database, actor: Actor, data: bytes, *, filename: str | None = None
) -> StoredImage:
    processed = await asyncio.to_thread(process, data)
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
