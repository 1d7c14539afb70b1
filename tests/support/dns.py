"""A real DNS server on 127.0.0.1 for the tests (dnslib), answering the
records a test gives it: TXT for DKIM keys, SPF and DMARC.

Verifiers outside Python (Perl's Mail::DKIM) and resolvers (dnspython) ask it
over the wire, UDP and TCP, as they would ask the city's resolver.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port: int = udp.getsockname()[1]
        return port


def txt_strings(value: bytes) -> list[bytes]:
    """A TXT value as the wire carries it: strings of at most 255 bytes (RFC 1035 §3.3.14)."""
    return [value[i : i + 255] for i in range(0, len(value), 255)] or [b""]


@dataclass
class Zone(BaseResolver):  # type: ignore[misc]
    """TXT records by owner name (lower case, with the final dot); NXDOMAIN for the rest."""

    txt: dict[str, bytes] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower()
        self.asked.append(name)
        value = self.txt.get(name)
        if value is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.TXT, QTYPE.ANY):
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(txt_strings(value)), ttl=60))
        return reply


@dataclass
class DnsServer:
    zone: Zone
    port: int


@contextmanager
def dns_server(txt: dict[str, bytes]) -> Iterator[DnsServer]:
    """A DNS server on 127.0.0.1 (UDP and TCP, one free port) for the block's length."""
    zone = Zone({name.lower().rstrip(".") + ".": value for name, value in txt.items()})
    port = _free_port()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [
        DNSServer(zone, port=port, address="127.0.0.1", logger=quiet, tcp=tcp)
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    try:
        yield DnsServer(zone, port)
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()
