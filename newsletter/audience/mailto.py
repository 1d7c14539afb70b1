"""Opt-outs by mail: a message to a subscriber's ``List-Unsubscribe`` mailto address.

The address (:func:`newsletter.core.signing.unsubscribe_mailto`) names the
subscriber with a keyed signature. Mail to it arrives with the rest of the
return traffic; ``newsletter bounces`` and ``POST /api/v1/bounces`` recognise
it (:func:`subscriber_in_headers`) and unsubscribe the person, exactly as the
one-click link does.
"""

from __future__ import annotations

import hmac
import re
from email.message import Message
from email.utils import getaddresses

from newsletter.core.signing import MAILTO_PURPOSE, signature

_ADDRESS = re.compile(r"\+unsubscribe-(\d{1,18})-([a-z2-7]{8})@", re.ASCII | re.IGNORECASE)
# Where an MTA or mailbox records who a message was for.
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def subscriber_in_headers(message: Message, secret: str) -> int | None:
    """The subscriber a message was sent to by way of their unsubscribe address."""
    values = [str(v) for name in RECIPIENT_HEADERS for v in message.get_all(name, [])]
    for _, address in getaddresses(values):
        match = _ADDRESS.search(address)
        if match is None:
            continue
        subscriber_id, sig = int(match.group(1)), match.group(2).lower()
        if hmac.compare_digest(sig, signature(secret, MAILTO_PURPOSE, subscriber_id)):
            return subscriber_id
    return None
