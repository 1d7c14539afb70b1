"""Ops API: hand in a bounce (DSN or an MTA's own format) as a raw message."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Router, post
from litestar.exceptions import ClientException, HTTPException

from newsletter.audience import bounces
from newsletter.ops.audit import record
from newsletter.web.auth import SECURITY, provide_actor, requires
from newsletter.web.deps import DB, Config, Who

RAW_TYPES = ("message/rfc822", "message/delivery-status", "text/plain", "application/octet-stream")


class AppliedOut(msgspec.Struct):
    subscriber_id: int | None
    delivery_id: int | None
    kind: str
    action: str
    matched_by: str


class BounceOut(msgspec.Struct):
    status: str  # "applied", "unsubscribed", "unmatched" or "ignored"
    applied: list[AppliedOut]
    unmatched: list[str]
    detail: str | None = None
    unsubscribed: list[int] = []


@post(
    "/bounces",
    summary="Process one bounce message",
    status_code=200,
    request_max_body_size=bounces.MAX_BOUNCE_BYTES,
)
async def post_bounce(
    request: Request[Any, Any, Any], db: DB, settings: Config, actor: Who
) -> BounceOut:
    """The body is one raw RFC 5322 message (`Content-Type: message/rfc822`): an
    RFC 3464 delivery status notification or any common MTA bounce. It is matched
    by VERP return path, our Message-ID, or the failed address, and the bounce
    policy applied: hard bounce → suppressed at once; soft bounces counted,
    suppressed after a threshold. Delay notices and auto-replies change nothing."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in RAW_TYPES:
        raise HTTPException(
            status_code=415,
            detail="send the bounce as the raw message, Content-Type: message/rfc822",
        )
    raw = await request.body()
    if not raw.strip():
        raise ClientException("empty body: send the raw bounce message")
    result = await bounces.process(db, settings, raw)
    applied = [
        AppliedOut(a.subscriber_id, a.delivery_id, a.kind, a.action, a.matched_by)
        for a in result.applied
    ]
    if applied:
        async with db.transaction() as conn:
            await record(
                conn,
                actor,
                "bounce.apply",
                ",".join(f"subscriber:{a.subscriber_id}" for a in applied)[:500],
                actions=[a.action for a in applied],
            )
    if result.unsubscribed:
        async with db.transaction() as conn:
            await record(
                conn,
                actor,
                "unsubscribe.mailto",
                ",".join(f"subscriber:{s}" for s in result.unsubscribed),
            )
        return BounceOut("unsubscribed", [], [], None, result.unsubscribed)
    status = "applied" if applied else ("ignored" if result.ignored else "unmatched")
    return BounceOut(status, applied, result.unmatched, result.ignored)


ROUTES = [
    Router(
        "/api/v1",
        route_handlers=[post_bounce],
        guards=[requires("ops")],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["ops"],
    )
]
