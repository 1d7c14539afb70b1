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
:meth:`dkim_signer.DkimSigner.reference` is that call, and
``tests/core/test_dkim_differential.py`` holds the two to byte equality over
generated messages and verifies every one with dkimpy and with Perl's
Mail::DKIM (what SpamAssassin uses) through a local DNS server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from newsletter.core.settings import Settings

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
    # dkimpy (with dnspython) and cryptography are loaded only when mail is
    # signed: a worker without a key stays about 15 MB smaller.
    from newsletter.core.dkim_signer import DkimSigner

    domain = settings.dkim_domain or settings.from_domain
    return DkimSigner(settings.dkim_selector, domain, settings.dkim_private_key)
