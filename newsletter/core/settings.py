"""Settings, read once from ``NEWSLETTER_*`` environment variables and validated.

A bad or missing value raises :class:`SettingsError` whose message is one line
naming the variable, so an operator sees exactly what to fix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "NEWSLETTER_"
DEV_SECRET_KEY = "dev-only-secret-key-not-for-production"  # noqa: S105 - dev mode only
# Phrases of example values that must never sign real links.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "not-for-production", "example", "secret-key-here")


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where outgoing mail goes, parsed from ``NEWSLETTER_SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # implicit TLS (smtps://)
    starttls: bool = False

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise SettingsError(
                f"{PREFIX}SMTP_URL: scheme must be smtp:// or smtps://, got {parts.scheme!r}"
            )
        if not parts.hostname:
            raise SettingsError(f"{PREFIX}SMTP_URL: no host in {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}SMTP_URL: bad port ({exc})") from None
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["0"])[-1].lower() in ("1", "true", "yes", "on")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            starttls=starttls,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a web or worker process needs to know, validated."""

    database_url: str | None
    smtp: SmtpTarget
    secret_key: str
    base_url: str
    from_address: str
    list_id: str
    rate_per_second: float
    rate_per_hour: int | None = None
    smtp_connections: int = 10
    batch_size: int = 200
    max_attempts: int = 6
    timezone: str = "Asia/Seoul"
    dkim_selector: str | None = None
    dkim_private_key: str | None = None
    dkim_domain: str | None = None
    bounce_address: str | None = None
    confirm_max_age_seconds: int = 3 * 24 * 3600
    reconfirm_after_days: int = 730
    reconfirm_grace_days: int = 30
    retention_days: int = 30
    signup_limit_per_ip_per_hour: int = 20
    signup_limit_per_address_per_day: int = 3
    consent_version: str = "2026-11"
    # Proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips):
    # without the right value every resident shares the proxy's address and the
    # per-IP signup limit turns into a city-wide one.
    trusted_proxies: str = "127.0.0.1"
    dev: bool = False
    dev_dir: Path = Path(".dev")

    @property
    def from_domain(self) -> str:
        return parseaddr(self.from_address)[1].rpartition("@")[2]

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dev: bool = False) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        dev = dev or reader.flag("DEV", default=False)
        secret = reader.text("SECRET_KEY")
        if secret is None:
            if not dev:
                raise SettingsError(
                    f"{PREFIX}SECRET_KEY: required outside dev mode "
                    "(set a long random value, e.g. `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))'`)"
                )
            secret = DEV_SECRET_KEY
        elif len(secret) < 16:
            raise SettingsError(f"{PREFIX}SECRET_KEY: too short, use at least 16 characters")
        elif not dev and any(marker in secret.lower() for marker in PLACEHOLDER_MARKERS):
            raise SettingsError(
                f"{PREFIX}SECRET_KEY: looks like a placeholder; anyone who knows it can forge "
                "unsubscribe and confirmation links — set a long random value"
            )

        database_url = reader.text("DATABASE_URL")
        if database_url is not None:
            scheme = urlsplit(database_url).scheme
            if scheme not in ("postgres", "postgresql"):
                raise SettingsError(
                    f"{PREFIX}DATABASE_URL: must start with postgresql://, "
                    f"got {scheme or 'nothing'!r}"
                )
        elif not dev:
            raise SettingsError(f"{PREFIX}DATABASE_URL: required outside dev mode")

        smtp = SmtpTarget.parse(reader.text("SMTP_URL") or "smtp://127.0.0.1:2525")

        base_url = (reader.text("BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
        if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
            raise SettingsError(f"{PREFIX}BASE_URL: must be an http(s) URL, got {base_url!r}")

        from_address = reader.mailbox("FROM", "김포시 <news@gimpo.go.kr>")
        bounce_address = reader.text("BOUNCE_ADDRESS")
        if bounce_address is not None and "@" not in bounce_address:
            raise SettingsError(f"{PREFIX}BOUNCE_ADDRESS: must be an e-mail address")

        timezone = reader.text("TIMEZONE") or "Asia/Seoul"
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"{PREFIX}TIMEZONE: unknown time zone {timezone!r}") from None

        dkim_selector = reader.text("DKIM_SELECTOR")
        dkim_key = reader.text("DKIM_PRIVATE_KEY")
        if (dkim_selector is None) != (dkim_key is None):
            raise SettingsError(
                f"{PREFIX}DKIM_SELECTOR: set both DKIM_SELECTOR and DKIM_PRIVATE_KEY, or neither"
            )
        if dkim_key is not None and "BEGIN" not in dkim_key:
            # Allow a path to a PEM file as well as the PEM text itself.
            path = Path(dkim_key)
            if not path.is_file():
                raise SettingsError(
                    f"{PREFIX}DKIM_PRIVATE_KEY: neither a PEM key nor a readable file: {dkim_key!r}"
                )
            dkim_key = path.read_text()

        settings = cls(
            database_url=database_url,
            smtp=smtp,
            secret_key=secret,
            base_url=base_url,
            from_address=from_address,
            list_id=reader.text("LIST_ID") or "김포시 뉴스레터 <newsletter.gimpo.go.kr>",
            rate_per_second=reader.number("RATE_PER_SECOND", 20.0, minimum=0.1),
            rate_per_hour=reader.optional_int("RATE_PER_HOUR", minimum=1),
            smtp_connections=int(reader.number("SMTP_CONNECTIONS", 10, minimum=1, integer=True)),
            batch_size=int(reader.number("BATCH_SIZE", 200, minimum=1, integer=True)),
            max_attempts=int(reader.number("MAX_ATTEMPTS", 6, minimum=1, integer=True)),
            timezone=timezone,
            dkim_selector=dkim_selector,
            dkim_private_key=dkim_key,
            dkim_domain=reader.text("DKIM_DOMAIN"),
            bounce_address=bounce_address,
            confirm_max_age_seconds=int(
                reader.number("CONFIRM_MAX_AGE_HOURS", 72, minimum=1, integer=True) * 3600
            ),
            reconfirm_after_days=int(
                reader.number("RECONFIRM_AFTER_DAYS", 730, minimum=1, integer=True)
            ),
            reconfirm_grace_days=int(
                reader.number("RECONFIRM_GRACE_DAYS", 30, minimum=1, integer=True)
            ),
            retention_days=int(reader.number("RETENTION_DAYS", 30, minimum=0, integer=True)),
            signup_limit_per_ip_per_hour=int(
                reader.number("SIGNUP_LIMIT_PER_IP_PER_HOUR", 20, minimum=1, integer=True)
            ),
            signup_limit_per_address_per_day=int(
                reader.number("SIGNUP_LIMIT_PER_ADDRESS_PER_DAY", 3, minimum=1, integer=True)
            ),
            trusted_proxies=reader.proxies("TRUSTED_PROXIES", "127.0.0.1"),
            dev=dev,
            dev_dir=Path(reader.text("DEV_DIR") or ".dev"),
        )
        return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(PREFIX + name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def flag(self, name: str, *, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{PREFIX}{name}: expected true/false, got {value!r}")

    def number(self, name: str, default: float, *, minimum: float, integer: bool = False) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            parsed = int(value) if integer else float(value)
        except ValueError:
            parsed = math.nan
        if not math.isfinite(parsed):
            kind = "an integer" if integer else "a number"
            raise SettingsError(f"{PREFIX}{name}: expected {kind}, got {value!r}")
        if parsed < minimum:
            raise SettingsError(f"{PREFIX}{name}: must be at least {minimum}, got {value!r}")
        return parsed

    def optional_int(self, name: str, *, minimum: int) -> int | None:
        if self.text(name) is None:
            return None
        return int(self.number(name, 0, minimum=minimum, integer=True))

    def proxies(self, name: str, default: str) -> str:
        value = self.text(name) or default
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise SettingsError(
                    f"{PREFIX}{name}: {entry!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        return ",".join(entries)

    def mailbox(self, name: str, default: str) -> str:
        value = self.text(name) or default
        display, addr = parseaddr(value)
        if "@" not in addr or any(c in value for c in "\r\n"):
            raise SettingsError(f"{PREFIX}{name}: not a mailbox like '김포시 <news@gimpo.go.kr>'")
        local, _, domain = addr.rpartition("@")
        return str(Address(display_name=display, username=local, domain=domain))
