"""Does each link and image in an issue answer? Asked the way a resident's
browser would, under the feed import's SSRF rules.

Every request goes through the feed fetcher's connector (``feeds``): it
resolves once, refuses a host with any non-public address, and connects to
the very address it checked -- on every redirect hop. A link that leads to
an internal address is therefore never fetched; it is reported as a problem,
because no resident can reach it either.

How hard we knock: a link is asked with HEAD, and with GET when HEAD is
refused or fails (many servers answer HEAD badly); at most five redirects;
:data:`SECONDS` for each request, whatever the server does (the feed
fetcher's watchdog shuts its sockets); :data:`AT_ONCE` requests at a time;
each host asked at most :data:`PER_HOST_PER_SECOND` times a second, so a
city's own web server never sees us as a flood. Requests block (urllib), so
they run in threads of their own, never the event loop's.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from newsletter.editorial.feeds import FeedFetchPolicy, _Deadline, _opener, _Refused

SECONDS = 5.0
AT_ONCE = 8
PER_HOST_PER_SECOND = 2.0
PAGE_BYTES = 64 * 1024  # enough of a page to know it answered
IMAGE_MAX_BYTES = 10 * 1024 * 1024  # read this much of an image at most
USER_AGENT = "gimpo-newsletter/1.0 (pre-send link check)"

_threads = ThreadPoolExecutor(max_workers=AT_ONCE, thread_name_prefix="link-check")


@dataclass(frozen=True)
class Answer:
    """What one URL answered. ``outcome``: ``ok``, ``refused`` (the server
    said no: 401/403/429), ``dead`` (4xx/5xx), ``unreachable`` (no answer in
    time, no such host, connection refused), ``internal`` (a private or
    internal address, not fetched), ``invalid`` (not an http(s) URL)."""

    url: str
    outcome: str
    status: int | None = None
    final_url: str | None = None
    content_type: str | None = None
    size: int | None = None  # bytes of the body (images: read in full, up to the cap)
    width: int | None = None
    height: int | None = None


def _read_answer(url: str, method: str, policy: FeedFetchPolicy, limit: int) -> Answer:
    request = urllib.request.Request(  # noqa: S310 - scheme checked by the caller
        url, method=method, headers={"User-Agent": USER_AGENT, "Accept": "*/*"}
    )
    deadline = _Deadline(SECONDS)
    try:
        with _opener(policy.allowed_private, deadline).open(request, timeout=SECONDS) as response:
            body: bytes = response.read(limit + 1) if method == "GET" else b""
            status = int(response.status)
            final = str(response.geturl())
            content_type = response.headers.get_content_type()
            length = response.headers.get("Content-Length")
        if deadline.expired:
            return Answer(url, "unreachable", final_url=final)
        size = len(body) if method == "GET" and len(body) <= limit else None
        if size is None and length and length.isdigit():
            size = int(length)
        return Answer(url, "ok", status, final, content_type, size, *_dimensions(body))
    except urllib.error.HTTPError as exc:
        exc.close()
        outcome = "refused" if exc.code in (401, 403, 429) else "dead"
        return Answer(url, outcome, exc.code, str(exc.geturl() or url))
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, _Refused):
            return Answer(url, "internal")
        return Answer(url, "unreachable")
    except _Refused:
        return Answer(url, "internal")
    except (OSError, ValueError, http.client.HTTPException):
        return Answer(url, "unreachable")
    finally:
        deadline.cancel()


def _dimensions(body: bytes) -> tuple[int | None, int | None]:
    """Width and height from the image's header; nothing is decoded."""
    if not body:
        return None, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body)) as image:
                width, height = image.size
                return int(width), int(height)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None, None


def _ask(url: str, policy: FeedFetchPolicy, image: bool) -> Answer:
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return Answer(url, "invalid")
    if image:  # its bytes tell its type, weight and size
        return _read_answer(url, "GET", policy, IMAGE_MAX_BYTES)
    first = _read_answer(url, "HEAD", policy, 0)
    if first.outcome in ("ok", "internal", "invalid"):
        return first
    # HEAD refused, failed or unanswered: a browser asks with GET.
    second = _read_answer(url, "GET", policy, PAGE_BYTES)
    return second if second.outcome != "unreachable" or first.outcome == "unreachable" else first


class _HostPace:
    """At most ``per_second`` requests a second to each host, across one check."""

    def __init__(self, per_second: float) -> None:
        self.gap = 1.0 / per_second
        self.next_at: dict[str, float] = {}
        self.lock = asyncio.Lock()

    async def wait(self, url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        async with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at.get(host, now))
            self.next_at[host] = at + self.gap
        if at > now:
            await asyncio.sleep(at - now)


async def ask_all(
    urls: Sequence[str], images: Sequence[str], policy: FeedFetchPolicy
) -> dict[tuple[str, bool], Answer]:
    """Every link and image answered, each asked once, keyed by (url, is_image)."""
    pace = _HostPace(PER_HOST_PER_SECOND)
    slots = asyncio.Semaphore(AT_ONCE)
    wanted = list(dict.fromkeys([(u, False) for u in urls] + [(u, True) for u in images]))

    async def one(url: str, image: bool) -> Answer:
        async with slots:
            await pace.wait(url)
            return await asyncio.wrap_future(_threads.submit(_ask, url, policy, image))

    answers = await asyncio.gather(*(one(url, image) for url, image in wanted))
    return dict(zip(wanted, answers, strict=True))
