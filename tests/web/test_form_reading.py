"""The public form is read as the standard reads it: the signup's own fast
reading of urlencoded bodies and client addresses gives what urllib and
ipaddress give, for whatever a browser or a script sends."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, urlencode

from hypothesis import given
from hypothesis import strategies as st

from newsletter.core.buckets import ip_bucket
from newsletter.web.http.forms import urlencoded_fields

# Pieces a form body is made of, well-formed or not: escapes (whole, cut short,
# not hex), '+', separators, raw non-ASCII (a script may send it unescaped).
PIECES = st.sampled_from(
    [
        "a",
        "email",
        "=",
        "&",
        "%",
        "+",
        "%2B",
        "%26",
        "%3D",
        "%40",
        "%EA",
        "%B9",
        "%80",
        "%4",
        "%zz",
        "%41",
        " ",
        ";",
        "é",
        "한",
        "%C3%A9",
        "%ED%95%9C",
        "%FF",
    ]
)


def standard(encoded: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


@given(st.lists(PIECES, max_size=16).map("".join))
def test_any_body_is_read_as_parse_qsl_reads_it(encoded: str) -> None:
    assert urlencoded_fields(encoded) == standard(encoded)


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), max_size=5))
def test_what_a_browser_encodes_comes_back_as_typed(fields: dict[str, str]) -> None:
    assert urlencoded_fields(urlencode(fields)) == fields


def test_the_signup_form_as_a_browser_sends_it() -> None:
    body = "email=kim%40example.com&name=%EA%B9%80%ED%8F%AC+%EC%8B%9C%EB%AF%BC&consent=on"
    assert urlencoded_fields(body) == {
        "email": "kim@example.com",
        "name": "김포 시민",
        "consent": "on",
    }


@given(st.ip_addresses(v=4))
def test_an_ipv4_client_counts_as_itself(address: ipaddress.IPv4Address) -> None:
    assert ip_bucket(str(address)) == f"ip:{address}"


def test_addresses_not_written_canonically_count_as_unknown_or_their_client() -> None:
    assert ip_bucket("010.1.1.1") == "ip:unknown"  # leading zeros: not an address
    assert ip_bucket("1.2.3") == "ip:unknown"
    assert ip_bucket(" 1.2.3.4") == "ip:unknown"
    assert ip_bucket("::ffff:192.0.2.7") == "ip:192.0.2.7"
    assert ip_bucket("2001:db8::1") == "ip:2001:db8::/64"
