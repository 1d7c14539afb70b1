"""The RSA signer of :mod:`newsletter.core.dkim`, kept apart so that only a
process that signs loads dkimpy, dnspython and cryptography."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from newsletter.core.dkim import header_list, header_names
from newsletter.core.settings import SettingsError

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
