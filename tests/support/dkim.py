"""A DKIM key of the tests' own and its DNS record, for dkimpy's verifier."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from functools import cache

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SELECTOR = "news2026"
DOMAIN = "gimpo.go.kr"  # the test settings' FROM domain
RECORD_NAME = f"{SELECTOR}._domainkey.{DOMAIN}.".encode()


@dataclass
class DkimKey:
    private_pem: str
    record: bytes  # the TXT record: v=DKIM1; k=rsa; p=<public key>
    looked_up: list[bytes] = field(default_factory=list)

    def dns(self, name: bytes, timeout: int = 5) -> bytes:
        """The DNS stub dkimpy calls instead of a resolver: our record, nothing else."""
        self.looked_up.append(name)
        return self.record if name == RECORD_NAME else b""

    def verify(self, raw: bytes) -> bool:
        return bool(dkim.verify(raw, dnsfunc=self.dns))


@cache
def _key_pair() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def session_key() -> DkimKey:
    """One key per test session (2048 bits, made once), a fresh lookup log each call."""
    private, public = _key_pair()
    return DkimKey(private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))


def signature_tags(raw: bytes) -> dict[str, str]:
    """The DKIM-Signature's tags, white space removed."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    header = str(message["DKIM-Signature"])
    return {
        name.strip(): value
        for name, _, value in (t.partition("=") for t in re.sub(r"\s+", "", header).split(";"))
        if name.strip()
    }


def signed_headers(raw: bytes) -> list[str]:
    """``h=``, in order, lower case, repeats kept."""
    return signature_tags(raw)["h"].lower().split(":")


def body_parts(raw: bytes) -> list[tuple[str, str]]:
    """(content type, transfer encoding) of every leaf part."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    return [
        (part.get_content_type(), str(part.get("Content-Transfer-Encoding", "7bit")).lower())
        for part in message.walk()
        if not part.is_multipart()
    ]


def prepend(raw: bytes, header: bytes) -> bytes:
    """A header added on top, as a hop (or a forger) would."""
    return header + b"\r\n" + raw
