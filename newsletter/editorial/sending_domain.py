"""Is the sending domain ready for mail that passes receivers' checks?

Asked in DNS before an issue goes out: the ``FROM`` domain's SPF record
(``v=spf1`` at the domain) and DMARC record (``v=DMARC1`` at ``_dmarc.``),
the bounce address's domain's SPF record, and -- when a DKIM key is set --
whether the public key published at ``<selector>._domainkey.<domain>`` is the
one our key signs with. A published key that does not match fails DKIM on
every mail: that is a problem; a missing SPF or DMARC record is a warning
(receivers still take the mail, some into spam).

DNS through the system resolver, or ``NEWSLETTER_DNS_RESOLVER``
(``host`` or ``host:port``), :data:`SECONDS` a query. A resolver that does
not answer is a warning that says so -- never a pass.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.core.settings import Settings

SECONDS = 3.0


class ResolverDown(Exception):
    """The resolver did not answer (time-out, refused, no servers)."""


@dataclass(frozen=True)
class Record:
    """The TXT records at a name that start with ``prefix`` (empty: none there)."""

    name: str
    found: tuple[str, ...]


def resolver_for(setting: str | None) -> dns.asyncresolver.Resolver:
    if not setting:
        resolver = dns.asyncresolver.Resolver()
    else:
        host, _, port = setting.rpartition(":") if setting.count(":") == 1 else (setting, "", "")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = int(port) if port else 53
    resolver.timeout = SECONDS
    resolver.lifetime = SECONDS
    return resolver


async def txt(resolver: dns.asyncresolver.Resolver, name: str, prefix: str) -> Record:
    """TXT records at ``name`` starting with ``prefix`` (case-insensitive), strings joined."""
    try:
        answer = await resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Record(name, ())
    except (dns.exception.Timeout, dns.resolver.NoNameservers, OSError) as exc:
        raise ResolverDown(str(exc)) from None
    except dns.exception.DNSException:
        return Record(name, ())
    values = []
    for rdata in answer:
        value = b"".join(rdata.strings).decode("utf-8", "replace").strip()
        if value.lower().startswith(prefix.lower()):
            values.append(value)
    return Record(name, tuple(values))


def our_public_key(settings: Settings) -> bytes | None:
    """The DER public key our DKIM private key signs for (None without a key)."""
    if not settings.dkim_private_key:
        return None
    key = serialization.load_pem_private_key(settings.dkim_private_key.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        return None
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def published_key(record: str) -> bytes | None:
    """The ``p=`` of a DKIM key record, decoded (None when absent or not base64)."""
    tags = {}
    for part in record.split(";"):
        name, _, value = part.partition("=")
        tags[name.strip().lower()] = "".join(value.split())
    try:
        return base64.b64decode(tags.get("p", ""), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip(" >").lower()
