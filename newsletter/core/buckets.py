"""Who is asking, as the rate limits count it.

Signup and login both limit attempts per client address; they group
addresses the same way, here.
"""

from __future__ import annotations

import ipaddress
import socket


def ip_bucket(ip: str | None) -> str:
    """A client's bucket: its IPv4 address, or its IPv6 /64.

    One household, office or phone gets a whole /64 and can pick any address
    in it, so counting each /128 would let one device try without limit. An
    IPv4 address mapped into IPv6 counts as itself.
    """
    if not ip:
        return "ip:unknown"
    try:
        # The usual case, an IPv4 address written canonically, checked in C
        # (a signup is counted here on every request of the public form).
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, ip)) == ip:
            return f"ip:{ip}"
    except OSError:
        pass  # IPv6, or not canonical: ipaddress decides
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"
