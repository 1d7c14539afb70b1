"""Opt-outs by mail: a message to a subscriber's ``List-Unsubscribe`` mailto address.

The address (:func:`newsletter.core.signing.unsubscribe_mailto`) names the
subscriber's public id with a keyed signature. Mail to it arrives with the
rest of the return traffic; ``newsletter bounces`` and ``POST /api/v1/bounces``
recognise it (:func:`subscriber_in_headers`) and unsubscribe the person,
exactly as the one-click link does.
"""

from __future__ import annotations

import re
from email.message import Message

from newsletter.core.signing import read_mailto
from newsletter.core.tokens import SubscriberRef

# Bounded repeats and a literal start: linear on any header, however long.
_ADDRESS = re.compile(r"\+unsubscribe-([0-9a-z]{1,18})-([a-z2-7]{8})@", re.ASCII | re.IGNORECASE)
# Where an MTA or mailbox records who a message was for.
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def subscriber_in_headers(message: Message, secret: str) -> SubscriberRef | None:
    """The subscriber a message was sent to by way of their unsubscribe address."""
    # The pattern is searched in the raw header text, not in parsed addresses:
    # it needs no address parser, whose cost on a hostile header is its own.
    for name in RECIPIENT_HEADERS:
        for value in message.get_all(name, []):
            for match in _ADDRESS.finditer(str(value)):
                ref = read_mailto(secret, match.group(1), match.group(2))
                if ref is not None:
                    return ref
    return None
