"""DKIM signatures (RFC 6376) for every mail we send, on when DKIM_SELECTOR and
DKIM_PRIVATE_KEY are set: issues, confirmations, result notices,
re-confirmations and editors' test copies alike.

What is signed (``h=``): From, To, Subject, Date, Message-ID, MIME-Version,
Content-Type, List-Id, List-Unsubscribe, List-Unsubscribe-Post and
Auto-Submitted, each as many times as the message has it; From, Subject and
the ``List-*`` headers once more (*oversigned*), as is any listed header the
message lacks. A verifier hashes a name listed more often than it occurs as
empty, so a second From, Subject or unsubscribe target added anywhere, on top
included, breaks the signature instead of riding on it. Canonicalisation is
relaxed for headers (a relay refolding them changes nothing) and simple for
the body; the caller hands over a 7-bit body (quoted-printable or base64,
RFC 6376 §5.3) so no downgrading hop re-encodes what was signed.

Signing is dkimpy's ``dkim.sign``; this module only decides the header list
and loads and checks the key once. dkimpy's RSA is Python big-integer
arithmetic, a few milliseconds a signature (see BENCHMARKS.md, "Delivery,
signed"): a worker signs a few hundred mails a second, far above what a
relay takes from a city, and more workers sign more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.core.settings import Settings, SettingsError

Signer = Callable[[bytes], bytes]  # message (CRLF, not dot-stuffed) → the header to put on top

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"auto-submitted",
)
# Signed once more than they occur: nobody may add one (a second From shown
# instead of ours, another subject, an unsubscribe target of their own).
OVERSIGNED: frozenset[bytes] = frozenset(
    {b"from", b"subject", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post"}
)


def header_list(names: Sequence[bytes]) -> list[bytes]:
    """``h=``: each signed name as often as it occurs, oversigned and absent ones once more."""
    counts: dict[bytes, int] = {}
    for name in names:
        lower = name.strip(b" \t").lower()
        counts[lower] = counts.get(lower, 0) + 1
    listed: list[bytes] = []
    for name in SIGNED_HEADERS:
        occurs = counts.get(name, 0)
        listed += [name] * (occurs + (1 if name in OVERSIGNED or not occurs else 0))
    return listed


class DkimSigner:
    """RSA-SHA256, relaxed/simple, by dkimpy; the key checked once, at start-up."""

    def __init__(self, selector: str, domain: str, private_key_pem: str) -> None:
        try:
            key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SettingsError(f"DKIM_PRIVATE_KEY: not a usable PEM private key ({exc})") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SettingsError("DKIM_PRIVATE_KEY: an RSA key is needed (rsa-sha256)")
        if key.key_size < 1024:
            raise SettingsError("DKIM_PRIVATE_KEY: the RSA key is shorter than 1024 bits")
        if not (selector.isascii() and domain.isascii()):
            raise SettingsError("DKIM_SELECTOR, DKIM_DOMAIN: ASCII only (an IDN domain as xn--…)")
        self.pem = private_key_pem.encode()
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")

    def __call__(self, message: bytes) -> bytes:
        header: bytes = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.pem,
            canonicalize=(b"relaxed", b"simple"),
            include_headers=header_list(header_names(message)),
            linesep=b"\r\n",
        )
        return header


def header_names(message: bytes) -> list[bytes]:
    """The names of the message's header fields, in order (continuation lines skipped)."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[:end]
    return [
        line.partition(b":")[0]
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]


def signer_for(settings: Settings) -> Signer | None:
    """The signer for our mail, or None when DKIM is off (a bad key stops start-up)."""
    if not settings.dkim_selector or not settings.dkim_private_key:
        return None
    domain = settings.dkim_domain or settings.from_domain
    return DkimSigner(settings.dkim_selector, domain, settings.dkim_private_key)
