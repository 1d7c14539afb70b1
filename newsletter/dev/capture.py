"""A capture SMTP server for development: every message is kept, none relayed.

Messages land in a Maildir (``.dev/mail``) that ``/dev/outbox`` lists.
"""

from __future__ import annotations

import logging
import mailbox
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("newsletter.dev.capture")
_HEADERS = BytesHeaderParser(policy=policy.default)


def open_maildir(directory: Path) -> mailbox.Maildir:
    """The Maildir at ``directory`` with its cur/new/tmp folders in place.

    (``mailbox.Maildir(create=True)`` only makes them when the folder itself
    is missing, so a pre-created ``.dev/mail`` would stay unusable.)
    """
    for sub in ("cur", "new", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(directory, create=False)


class MaildirHandler:
    def __init__(self, directory: Path) -> None:
        self.maildir = open_maildir(directory)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        envelope_header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        self.maildir.add(envelope_header + content)
        subject = _HEADERS.parsebytes(content).get("Subject", "(no subject)")
        log.info("captured %s → %s", subject, ", ".join(envelope.rcpt_tos))
        return "250 Message captured"


def start_capture_server(directory: Path, host: str = "127.0.0.1", port: int = 2525) -> Any:
    """Start the server in a background thread; call ``.stop()`` on the result."""
    controller = Controller(MaildirHandler(directory), hostname=host, port=port)
    controller.start()
    return controller
