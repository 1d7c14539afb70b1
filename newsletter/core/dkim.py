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

Signing follows dkimpy, the maintained implementation, step for step: its
parser, its canonicalisation, its header selection and its folding build the
``DKIM-Signature`` header; only the RSA private-key operation runs in OpenSSL
(through ``cryptography``, with the key parsed once) instead of dkimpy's
Python big integers: ≈ 0.4 ms a signature instead of ≈ 8 ms (BENCHMARKS.md,
"Signed mail"). RSASSA-PKCS1-v1_5 is deterministic, so the result is the
very header ``dkim.sign`` writes for the same message and second;
:meth:`DkimSigner.reference` is that call, and
``tests/core/test_dkim_differential.py`` holds the two to byte equality over
generated messages and verifies every one with dkimpy and with Perl's
Mail::DKIM (what SpamAssassin uses) through a local DNS server.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Sequence

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

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


SIGNATURE_NAME = b"DKIM-Signature"


class DkimSigner:
    """RSA-SHA256, relaxed/simple unless told otherwise; the key checked and parsed once."""

    def __init__(
        self,
        selector: str,
        domain: str,
        private_key_pem: str,
        canonicalize: tuple[bytes, bytes] = (b"relaxed", b"simple"),
        clock: Callable[[], float] = time.time,
    ) -> None:
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
        self.key = key
        self.pem = private_key_pem.encode()
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.canonicalize = canonicalize
        self.policy = CanonicalizationPolicy.from_c_value(b"/".join(canonicalize))
        self.clock = clock

    def __call__(self, message: bytes) -> bytes:
        """The ``DKIM-Signature`` header (CRLF-terminated) for ``message`` (CRLF, not dot-stuffed).

        The steps and their order are dkimpy's ``DKIM.sign`` and ``gen_header``
        (dkim/__init__.py), with dkimpy's own functions wherever it has one.
        """
        headers, body = parse(message)
        include = header_list([name for name, _ in headers])
        body_hash = base64.b64encode(hashlib.sha256(self.policy.canonicalize_body(body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", self.policy.to_c_value()),
            (b"d", self.domain),
            (b"i", b"@" + self.domain),
            (b"q", b"dns/txt"),
            (b"s", self.selector),
            (b"t", str(int(self.clock())).encode("ascii")),
            (b"h", b" : ".join(include)),
            (b"bh", body_hash),
            # dkimpy's placeholder: b= folds onto a line of its own, so the
            # value signed and the value sent fold alike before b=.
            (b"b", b"0" * 60),
        ]
        unsigned = dkim.fold(_joined(fields), namelen=len(SIGNATURE_NAME), linesep=b"\r\n")
        unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
        digest = hashlib.sha256()
        dkim.hash_headers(
            digest,
            self.policy,
            self.policy.canonicalize_headers(headers),
            include,
            (SIGNATURE_NAME, b" " + unsigned),
            None,
        )
        signature = self.key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        fields[-1] = (b"b", base64.b64encode(signature))
        value: bytes = dkim.fold(
            _joined(fields) + b"\r\n", namelen=len(SIGNATURE_NAME), linesep=b"\r\n"
        )
        return SIGNATURE_NAME + b": " + value

    def reference(self, message: bytes) -> bytes:
        """The same header by ``dkim.sign`` alone: the implementation the fast path must equal."""
        header: bytes = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.pem,
            canonicalize=self.canonicalize,
            include_headers=header_list(header_names(message)),
            linesep=b"\r\n",
        )
        return header


def parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """``dkim.rfc822_parse``, with the body sliced off instead of split into lines.

    dkimpy splits the whole message at every line end and joins the body's
    lines again with CRLF: for our CRLF-only messages that is the bytes after
    the blank line, unchanged, and the split was most of a signature's time.
    Anything else (a bare LF anywhere, no header or no blank line) takes
    dkimpy's way.
    """
    end = message.find(b"\r\n\r\n")
    if end < 0 or message.startswith(b"\r\n") or message.count(b"\n") != message.count(b"\r\n"):
        headers, body = dkim.rfc822_parse(message)
        return headers, body
    headers, _ = dkim.rfc822_parse(message[: end + 2])
    return headers, message[end + 4 :]


def _joined(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"; ".join(name + b"=" + value for name, value in fields)


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
