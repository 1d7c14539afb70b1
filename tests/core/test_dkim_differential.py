"""The fast DKIM signer against the reference and two independent verifiers.

``DkimSigner`` signs with OpenSSL instead of dkimpy's Python RSA (≈ 20×
faster). A signer that is subtly wrong fails silently at the receiver: every
resident's mail would land in spam and nobody here would notice. So over
1,000 generated messages — Korean and long folded headers, odd white space,
oversigned and repeated headers, long lines, empty and whitespace-only
bodies, trailing blank lines, a dot at a line start — in all four
canonicalisations, each signature must be

1. byte for byte the header ``dkim.sign`` writes (RSASSA-PKCS1-v1_5 is
   deterministic, so any difference at all is a bug), and
2. valid to dkimpy's verifier and to Perl's Mail::DKIM (what SpamAssassin
   uses), which asks a real DNS server on 127.0.0.1 for the key.
"""

from __future__ import annotations

import base64
import random
import subprocess
from pathlib import Path

import dkim
import pytest
import time_machine

from newsletter.core.dkim_signer import DkimSigner, parse
from tests.support.debian import PackageUnavailable, ensure_package
from tests.support.dkim import DOMAIN, SELECTOR, session_key
from tests.support.dns import dns_server

MESSAGES = 1000
CANONICALISATIONS = [
    (b"relaxed", b"simple"),
    (b"relaxed", b"relaxed"),
    (b"simple", b"simple"),
    (b"simple", b"relaxed"),
]
NOW = 1_796_000_000  # a fixed second, so t= is the same for both signers
VERIFIER = Path(__file__).resolve().parent.parent / "support" / "dkim_verify.pl"

KOREAN = "김포시 뉴스레터 한강신도시 도시철도 시민 소통 공지 행사 안내 복지 교통"


def encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def white(rng: random.Random) -> str:
    return rng.choice([" ", "  ", "\t", " \t ", ""])


def header_value(rng: random.Random, name: str) -> str:
    words = KOREAN.split()
    if name in ("Subject", "From", "To"):
        korean = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        display = encoded_word(korean) if rng.random() < 0.7 else korean
        value = display if name == "Subject" else f"{display} <r{rng.randint(1, 99)}@gimpo.go.kr>"
    elif name == "List-Unsubscribe":
        token = "".join(rng.choice("abcdefXYZ0123456789-_") for _ in range(rng.randint(20, 140)))
        value = (
            f"<https://newsletter.gimpo.go.kr/unsubscribe?token={token}>, <mailto:u@gimpo.go.kr>"
        )
    elif name == "Content-Type":
        value = 'multipart/alternative; boundary="==b' + str(rng.randint(0, 10**9)) + '=="'
    else:
        value = " ".join(f"v{rng.randint(0, 999)}" for _ in range(rng.randint(1, 25)))
    if len(value) > 60 and rng.random() < 0.8:  # fold at a space, with a space or a tab
        cut = value.find(" ", 40)
        if cut > 0:
            value = value[:cut] + "\r\n" + rng.choice([" ", "\t", "   "]) + value[cut + 1 :]
    return white(rng) + value + white(rng)


def generated_message(rng: random.Random) -> bytes:
    names = [
        "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
        "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Auto-Submitted",
        "X-Mailer", "Received", "Precedence",
    ]  # fmt: skip
    chosen = [n for n in names if n in ("From", "Date") or rng.random() < 0.8]
    if rng.random() < 0.3:  # repeated headers: signed as often as they occur, plus once
        chosen += rng.sample(["Subject", "From", "To", "List-Unsubscribe", "Received"], 2)
    rng.shuffle(chosen)
    lines = []
    for name in chosen:
        shown = rng.choice([name, name.lower(), name.upper()]) if rng.random() < 0.2 else name
        lines.append(f"{shown}:{header_value(rng, name)}")
    head = "\r\n".join(lines).encode() + b"\r\n\r\n"
    return head + generated_body(rng)


def generated_body(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return b""
    if kind == 1:
        return rng.choice([b" \r\n", b"\r\n", b" \t \r\n", b"\r\n\r\n\r\n", b"\t\r\n  \r\n"])
    lines = []
    for _ in range(rng.randint(1, 80)):
        style = rng.randrange(6)
        if style == 0:
            lines.append(b"=EA=B9=80=ED=8F=AC" * rng.randint(1, 12))  # QP Korean
        elif style == 1:
            lines.append(b"x" * rng.randint(900, 2500))  # longer than SMTP's 998
        elif style == 2:
            lines.append(b"." + b"dot at the start" * rng.randint(0, 3))
        elif style == 3:
            lines.append(b"trailing white " + rng.choice([b" ", b"\t", b"  \t"]))
        elif style == 4:
            lines.append(b"")
        else:
            lines.append(b"in  the   middle\tof a line " * rng.randint(1, 4))
    # Every line ends in CRLF, the last one too: what our MIME builder makes
    # and SMTP carries. (A last line without CRLF is where dkimpy's relaxed
    # body canonicalisation and Mail::DKIM part ways -- " " against "" --
    # so no signer of ours is ever handed one.)
    body = b"".join(line + b"\r\n" for line in lines)
    return body + b"\r\n" * rng.choice([0, 0, 1, 2, 4])  # trailing blank lines


def generated_messages() -> list[bytes]:
    rng = random.Random(20261207)
    return [generated_message(rng) for _ in range(MESSAGES)]


def test_parse_is_dkimpys_parse_for_every_generated_message() -> None:
    odd = [b"A: 1\nB: 2\n\nbody\n", b"A: 1\r\n", b"A: 1\r\n\r\nx\ny\r\n", b"\r\n\r\nbody"]
    for message in generated_messages() + odd:
        headers, body = parse(message)
        assert (headers, body) == tuple(dkim.rfc822_parse(message))


def test_fast_signatures_equal_dkimpys_and_verify_with_dkimpy_and_mail_dkim(
    tmp_path: Path,
) -> None:
    try:
        ensure_package("libmail-dkim-perl", "/usr/share/perl5/Mail/DKIM/Verifier.pm")
    except PackageUnavailable as exc:
        pytest.skip(f"the second verifier (Perl's Mail::DKIM) cannot be had here: {exc}")
    key = session_key()
    signers = [DkimSigner(SELECTOR, DOMAIN, key.private_pem, canon) for canon in CANONICALISATIONS]
    signed: dict[str, bytes] = {}
    with time_machine.travel(NOW, tick=False):
        for number, message in enumerate(generated_messages()):
            signer = signers[number % len(signers)]
            header = signer(message)
            assert header == signer.reference(message), f"message {number}: differs from dkimpy"
            signed[f"{number:04d}.eml"] = header + message
    assert all(b"t=" + str(NOW).encode() in raw[:400] for raw in signed.values())

    for name, raw in signed.items():
        assert key.verify(raw), f"{name}: dkimpy rejects the signature"

    for name, raw in signed.items():
        (tmp_path / name).write_bytes(raw)
    record = key.record
    with dns_server({f"{SELECTOR}._domainkey.{DOMAIN}": record}) as dns:
        done = subprocess.run(
            ["perl", str(VERIFIER), str(dns.port), str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    verdicts = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert len(verdicts) == MESSAGES
    failed = {name: v for name, v in verdicts.items() if not v.startswith("pass")}
    assert not failed, f"Mail::DKIM rejects {len(failed)}: {list(failed.items())[:5]}"


def test_mail_dkim_rejects_a_signature_of_another_key_and_a_changed_body(tmp_path: Path) -> None:
    """The second verifier is not a rubber stamp: it fails what it must."""
    try:
        ensure_package("libmail-dkim-perl", "/usr/share/perl5/Mail/DKIM/Verifier.pm")
    except PackageUnavailable as exc:
        pytest.skip(f"the second verifier (Perl's Mail::DKIM) cannot be had here: {exc}")
    key = session_key()
    message = generated_messages()[2]
    header = DkimSigner(SELECTOR, DOMAIN, key.private_pem)(message)
    (tmp_path / "good.eml").write_bytes(header + message)
    (tmp_path / "changed.eml").write_bytes(header + message + b"P.S. added on the way\r\n")
    other = DkimSigner("other", DOMAIN, key.private_pem)(message)
    (tmp_path / "unknown-key.eml").write_bytes(other + message)
    with dns_server({f"{SELECTOR}._domainkey.{DOMAIN}": key.record}) as dns:
        done = subprocess.run(
            ["perl", str(VERIFIER), str(dns.port), str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    verdicts = {line.split(" ")[0]: line.split(" ")[1] for line in done.stdout.splitlines()}
    assert verdicts == {"good.eml": "pass", "changed.eml": "fail", "unknown-key.eml": "invalid"}
