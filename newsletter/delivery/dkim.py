"""Optional DKIM signing (dkimpy), on when DKIM_SELECTOR and DKIM_PRIVATE_KEY are set.

The signature covers the headers receivers and RFC 8058 care about: From,
Subject, Date, Message-ID, List-Id, List-Unsubscribe and
List-Unsubscribe-Post (so nobody can graft a different unsubscribe target
onto our mail), with relaxed/simple canonicalisation. Each message differs
(Message-ID, token, name), so each is signed; RSA-2048 costs ~1 ms.
"""

from __future__ import annotations

from collections.abc import Callable

import dkim

from newsletter.core.settings import Settings

SIGNED_HEADERS = (
    b"From",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
)


def signer_for(settings: Settings) -> Callable[[bytes], bytes] | None:
    """A function message → ``DKIM-Signature`` header bytes, or None when off."""
    if not settings.dkim_selector or not settings.dkim_private_key:
        return None
    selector = settings.dkim_selector.encode()
    domain = (settings.dkim_domain or settings.from_domain).encode()
    key = settings.dkim_private_key.encode()

    def sign(message: bytes) -> bytes:
        header: bytes = dkim.sign(
            message,
            selector,
            domain,
            key,
            include_headers=list(SIGNED_HEADERS),
            canonicalize=(b"relaxed", b"simple"),
            linesep=b"\r\n",
        )
        return header

    return sign
