"""The mailto half of ``List-Unsubscribe`` (RFC 2369): one address per subscriber.

``<local>+unsubscribe-<id>-<sig>@<domain>``, with local part and domain taken
from BOUNCE_ADDRESS (or FROM). The signature is keyed and lower-case base32,
because mail servers may fold the case of local parts. Mail to that address
arrives with the rest of the return traffic; ``newsletter bounces`` and
``POST /api/v1/bounces`` recognise it (:func:`subscriber_in_headers`) and
unsubscribe the person, exactly as the one-click link does.
"""

from __future__ import annotations

import hmac
import re
from email.message import Message
from email.utils import getaddresses, parseaddr

from newsletter.bounces import signature
from newsletter.settings import Settings

PURPOSE = "unsubscribe"
_ADDRESS = re.compile(r"\+unsubscribe-(\d{1,18})-([a-z2-7]{8})@", re.ASCII | re.IGNORECASE)
# Where an MTA or mailbox records who a message was for.
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def _base(settings: Settings) -> tuple[str, str]:
    address = settings.bounce_address or parseaddr(settings.from_address)[1]
    local, _, domain = address.rpartition("@")
    return local.split("+", 1)[0], domain


def unsubscribe_mailto(settings: Settings, subscriber_id: int | None) -> str:
    """``mailto:`` URI for List-Unsubscribe; ``None`` (previews) names nobody."""
    local, domain = _base(settings)
    if subscriber_id is None:
        return f"mailto:{local}+unsubscribe@{domain}?subject=unsubscribe"
    sig = signature(settings.secret_key, PURPOSE, subscriber_id)
    return f"mailto:{local}+unsubscribe-{subscriber_id}-{sig}@{domain}?subject=unsubscribe"


def subscriber_in_headers(message: Message, secret: str) -> int | None:
    """The subscriber a message was sent to by way of their unsubscribe address."""
    values = [str(v) for name in RECIPIENT_HEADERS for v in message.get_all(name, [])]
    for _, address in getaddresses(values):
        match = _ADDRESS.search(address)
        if match is None:
            continue
        subscriber_id, sig = int(match.group(1)), match.group(2).lower()
        if hmac.compare_digest(sig, signature(secret, PURPOSE, subscriber_id)):
            return subscriber_id
    return None
