"""Logging set-up: one JSON object per line on stderr, safe to ship anywhere.

* Fields: time, level, logger, message, anything passed with ``extra=`` and
  anything bound with :func:`log_context` (issue_id, delivery_id, worker_id,
  smtp_code ...), so one grep follows a send across processes.
* At info level and above, e-mail addresses are masked (``h***@example.com``):
  residents' addresses are personal data and log files travel further than the
  database. Debug output keeps them for local troubleshooting.
* Secrets never appear at any level: the configured secret key, SMTP and
  database passwords and the DKIM key are replaced wherever they occur, API
  keys (``nl_...``) and passwords in URLs are recognised by shape, and fields
  named like ``password``/``token``/``authorization`` are dropped to
  ``[redacted]``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from newsletter.core.settings import Settings

# Attributes every LogRecord has; anything else was passed via `extra=` and is
# emitted as a field of its own.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

REDACTED = "[redacted]"
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-]+)@((?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,}|xn--[A-Za-z0-9\-.]+)")
_API_KEY = re.compile(r"\bnl_[A-Za-z0-9_\-]{16,}")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+(?=@)", re.I)
_SECRET_FIELD = re.compile(r"pass(word)?|secret|token|authorization|api_?key|cookie|dkim", re.I)

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "newsletter_log_context", default=None
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block (this task only).

    ``with log_context(worker_id=w, issue_id=7): log.info("batch claimed")``
    """
    current = _context.get() or {}
    token = _context.set({**current, **fields})
    try:
        yield
    finally:
        _context.reset(token)


def mask_email(address: str) -> str:
    """``hong.gildong@example.com`` -> ``h***@example.com``."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else address


def mask_emails(text: str) -> str:
    return _EMAIL.sub(lambda m: f"{m.group(1)[:1]}***@{m.group(2)}", text)


def secrets_of(settings: Settings) -> list[str]:
    """The configured values that must never reach a log line."""
    values = [settings.secret_key, settings.smtp.password, settings.dkim_private_key]
    if settings.database_url:
        values.append(urlsplit(settings.database_url).password)
    return [v for v in values if v and len(v) >= 4]


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = (), *, mask_level: int = logging.INFO) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self.mask_level = mask_level

    def clean(self, text: str, *, mask: bool) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _API_KEY.sub(REDACTED, text)
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}", text)
        return mask_emails(text) if mask else text

    def _value(self, key: str, value: object, *, mask: bool) -> object:
        if _SECRET_FIELD.search(key):
            return REDACTED
        if isinstance(value, str):
            return self.clean(value, mask=mask)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.clean(str(value), mask=mask)

    def format(self, record: logging.LogRecord) -> str:
        mask = record.levelno >= self.mask_level
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.clean(record.getMessage(), mask=mask),
        }
        fields = dict(_context.get() or {})
        fields.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        for key, value in fields.items():
            entry[key] = self._value(key, value, mask=mask)
        if record.exc_info:
            entry["exception"] = self.clean(self.formatException(record.exc_info), mask=mask)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings, *, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets_of(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log duplicates what ops need from /metrics; keep errors.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # aiosmtpd (the dev capture server) logs every SMTP command at info.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
