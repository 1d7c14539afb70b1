"""Identifiers our mail carries, signed so that only we can mint them.

A bounce, a reply or an unsubscribe message may come from anyone; it changes
a subscriber only when it names one of these identifiers with a valid tag:

- the VERP envelope sender ``<local>+<delivery>-<sig>@<domain>`` (bounces);
- the Message-ID ``<nl.<issue>.<delivery>.<sig>@<domain>>`` (quoted in DSNs);
- the same two for transactional mail (confirmations, notices, test copies),
  naming the outbox row: ``<local>+o<outbox>-<sig>@<domain>`` and
  ``<nl.tx.<outbox>.<sig>@<domain>>``. The letter and the tag purposes of
  their own keep the two id spaces apart: outbox row 7 and delivery 7 are
  different addresses, different Message-IDs and different tags;
- the List-Unsubscribe mailto ``<local>+unsubscribe-<public id>-<sig>@<domain>``,
  naming the subscriber by the opaque public id (as links do), never the
  sequential row id. Addresses mailed before public ids carried the row id
  under another tag purpose; :func:`read_mailto` still reads them;
- the click redirect ``/c/<issue>/<item>/<sig>`` (the same for every
  recipient: it names an issue's news item, never a person).

Tags are keyed (SECRET_KEY), 40 bits, lower-case base32 because mail servers
may fold the case of local parts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import parseaddr

from newsletter.core.settings import Settings
from newsletter.core.tokens import PUBLIC_ID, InvalidToken, SubscriberRef

MAILTO_PURPOSE = "mailto"
LEGACY_MAILTO_PURPOSE = "unsubscribe"  # row-id addresses mailed before public ids


def signature(secret: str, purpose: str, value: int | str) -> str:
    """A short keyed tag proving we minted an id (VERP address, Message-ID)."""
    digest = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:5]).decode("ascii").lower()


def message_id_for(settings: Settings, issue_id: int, delivery_id: int) -> str:
    sig = signature(settings.secret_key, "msgid", delivery_id)
    return f"<nl.{issue_id}.{delivery_id}.{sig}@{settings.from_domain}>"


def verp_sender(settings: Settings, delivery_id: int) -> str | None:
    """``bounce+<delivery>-<sig>@domain`` when a bounce address is configured."""
    if not settings.bounce_address:
        return None
    local, _, domain = settings.bounce_address.rpartition("@")
    local = local.split("+", 1)[0]
    sig = signature(settings.secret_key, "verp", delivery_id)
    return f"{local}+{delivery_id}-{sig}@{domain}"


OUTBOX_VERP_PURPOSE = "verp-outbox"
OUTBOX_MSGID_PURPOSE = "msgid-outbox"


def outbox_message_id(settings: Settings, outbox_id: int) -> str:
    """The Message-ID of transactional mail: ``<nl.tx.<outbox>.<sig>@domain>``."""
    sig = signature(settings.secret_key, OUTBOX_MSGID_PURPOSE, outbox_id)
    return f"<nl.tx.{outbox_id}.{sig}@{settings.from_domain}>"


def outbox_verp_sender(settings: Settings, outbox_id: int) -> str | None:
    """``bounce+o<outbox>-<sig>@domain`` when a bounce address is configured."""
    if not settings.bounce_address:
        return None
    local, _, domain = settings.bounce_address.rpartition("@")
    local = local.split("+", 1)[0]
    sig = signature(settings.secret_key, OUTBOX_VERP_PURPOSE, outbox_id)
    return f"{local}+o{outbox_id}-{sig}@{domain}"


def _base(settings: Settings) -> tuple[str, str]:
    address = settings.bounce_address or parseaddr(settings.from_address)[1]
    local, _, domain = address.rpartition("@")
    return local.split("+", 1)[0], domain


def unsubscribe_mailto(settings: Settings, public_id: str | None) -> str:
    """``mailto:`` URI for List-Unsubscribe; ``None`` (previews) names nobody."""
    local, domain = _base(settings)
    if public_id is None:
        return f"mailto:{local}+unsubscribe@{domain}?subject=unsubscribe"
    sig = signature(settings.secret_key, MAILTO_PURPOSE, public_id)
    return f"mailto:{local}+unsubscribe-{public_id}-{sig}@{domain}?subject=unsubscribe"


def read_mailto(secret: str, ident: str, sig: str) -> SubscriberRef | None:
    """Whom ``+unsubscribe-<ident>-<sig>`` names, if we minted it (either form)."""
    ident, sig = ident.lower(), sig.lower()
    if PUBLIC_ID.fullmatch(ident) and hmac.compare_digest(
        sig, signature(secret, MAILTO_PURPOSE, ident)
    ):
        return SubscriberRef(public_id=ident)
    if ident.isdigit() and hmac.compare_digest(
        sig, signature(secret, LEGACY_MAILTO_PURPOSE, int(ident))
    ):
        try:
            return SubscriberRef.legacy(int(ident))
        except InvalidToken:
            return None
    return None


CLICK_PURPOSE = "click"


def click_path(secret: str, issue_id: int, news_item_id: int) -> str:
    """``/c/<issue>/<item>/<sig>``: the redirect for one news item's link in one issue."""
    sig = signature(secret, CLICK_PURPOSE, f"{issue_id}.{news_item_id}")
    return f"/c/{issue_id}/{news_item_id}/{sig}"


def click_signed(secret: str, issue_id: int, news_item_id: int, sig: str) -> bool:
    expected = signature(secret, CLICK_PURPOSE, f"{issue_id}.{news_item_id}")
    return hmac.compare_digest(expected, sig)
