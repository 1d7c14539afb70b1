"""DKIM: issue mail signed with a test key verifies with dkimpy against a DNS stub."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import dkim

from newsletter.core.db import Database
from tests.conftest import SmtpServer, drain, make_settings
from tests.support.delivery import add_subscribers, address, start_issue


def make_key(tmp_path: Path) -> tuple[str, bytes]:
    """A fresh RSA key (PEM) and its public half as DER, via the openssl CLI."""
    key_file = tmp_path / "dkim.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(key_file), "2048"], check=True, capture_output=True
    )
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key_file), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key_file.read_text(), public


async def test_issue_mail_carries_a_valid_dkim_signature_over_list_headers(
    database_url: str, db: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    private, public = make_key(tmp_path)
    settings = make_settings(
        database_url, smtp_server.target, dkim_selector="news2026", dkim_private_key=private
    )
    await add_subscribers(db, 3, name="김포 시민")
    await start_issue(db, settings)
    await drain(settings, db)
    [mail] = smtp_server.handler.to(address(2))

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    looked_up: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        looked_up.append(name)
        return record if name == b"news2026._domainkey.gimpo.go.kr." else b""

    assert dkim.verify(mail.data, dnsfunc=dns)
    assert looked_up == [b"news2026._domainkey.gimpo.go.kr."]
    signature = mail.message["DKIM-Signature"]
    tags = {
        k.strip(): v
        for k, _, v in (t.partition("=") for t in "".join(signature.split()).split(";"))
    }
    signed_headers = tags["h"].lower().split(":")
    for header in (
        "from",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert header in signed_headers

    # Tampering with the unsubscribe target breaks the signature.
    forged = mail.data.replace(b"unsubscribe?token=", b"unsubscribe?token=X", 1)
    assert not dkim.verify(forged, dnsfunc=dns)
