"""Settings, read once from ``NEWSLETTER_*`` environment variables and validated.

Each setting is declared once, as a field of :class:`Settings` with its
default, its variable and its bounds (:func:`setting`); :meth:`Settings.from_env`
reads them all from that declaration. A bad or missing value raises
:class:`SettingsError` whose message is one line naming the variable, so an
operator sees exactly what to fix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import secrets
import subprocess
import sys
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.core.city import GIMPO, City, CityFileError
from newsletter.core.city import load as load_city

PREFIX = "NEWSLETTER_"
# Phrases of example values that must never sign real links.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "not-for-production", "example", "secret-key-here")
HOW_TO_MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
# Anyone holding one link from us (sign up and you get one) can try keys
# offline, as fast as their hardware hashes; below ~100 bits that is a budget
# question, not a hope. 20 random letters and digits clear it; the command
# above gives 384 bits.
MIN_SECRET_BITS = 100
DEV_SECRET_FILE = "secret_key"  # noqa: S105 - a file name: inside DEV_DIR, one random key per checkout
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


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
        # Messages name the host, never the user name or password: they end up in logs.
        if not parts.hostname:
            raise SettingsError(f"{PREFIX}SMTP_URL: no host in {_without_credentials(url)!r}")
        try:
            port = parts.port
        except ValueError:
            raise SettingsError(
                f"{PREFIX}SMTP_URL: the port of {parts.hostname!r} must be a number from 1 to 65535"
            ) from None
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


def _without_credentials(url: str) -> str:
    """``url`` with its user name and password (before the host's ``@``) shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"


# A parser turns the variable's text (None when unset) into the field's value.
Parser = Callable[[str, "str | None", Any], Any]


def setting(
    default: Any,
    variable: str | None,
    *,
    minimum: float | None = None,
    scale: int = 1,
    parse: Parser | None = None,
) -> Any:
    """Declare one setting: its default, ``NEWSLETTER_<variable>`` and how to read it.

    Without ``parse``, the field's type decides (int, float, str, bool,
    Path, optionally ``| None``); ``minimum`` bounds numbers as written in the
    variable and ``scale`` converts them to the field's unit (hours → seconds).
    ``variable=None`` marks a value that is not read from the environment.
    """
    metadata = {"variable": variable, "minimum": minimum, "scale": scale, "parse": parse}
    return field(default=default, metadata=metadata)


def secret_bits(key: str) -> float:
    """About how many bits an attacker must guess to find ``key``.

    zxcvbn finds what makes a key guessable (words, names, keyboard walks,
    repeats, sequences, dates) and prices each piece; the pieces it finds no
    pattern in are priced here as random characters of the classes the key
    uses, which zxcvbn itself (written for passwords) counts as 10 per
    character. Keys longer than zxcvbn's 72-character limit are judged 72 at
    a time, so a long run of one letter is still worth next to nothing.
    """
    alphabet = sum(
        size
        for size, present in (
            (26, any(c.islower() for c in key)),
            (26, any(c.isupper() for c in key)),
            (10, any(c.isdigit() for c in key)),
            (33, any(not c.isalnum() for c in key)),
        )
        if present
    )
    per_random_character = math.log2(max(alphabet, 2))
    from zxcvbn import zxcvbn  # here, not at the top: see judged_bits

    bits = 0.0
    for start in range(0, len(key), 72):
        for match in zxcvbn(key[start : start + 72])["sequence"]:
            if str(match["pattern"]) == "bruteforce":  # the stubs leave this one out
                bits += per_random_character * len(match["token"])
            else:
                bits += math.log2(max(float(match["guesses"]), 1.0))
    return bits


@lru_cache(maxsize=16)
def judged_bits(key: str) -> float:
    """:func:`secret_bits`, judged in a short-lived child process unless zxcvbn
    is loaded already (the web loads it for people's passwords).

    zxcvbn's word lists take about 11 MB that no module ever gives back; a
    sending worker, which needs them only for this one look at start-up, would
    carry them for its whole life (a fifth of its memory). The key goes to the
    child on stdin, never on its command line.
    """
    if "zxcvbn" in sys.modules:
        return secret_bits(key)
    judged = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", _JUDGE],
        input=key.encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    if judged.returncode != 0:
        why = judged.stderr.decode(errors="replace").strip()[-200:]
        raise SettingsError(f"SECRET_KEY: could not be judged ({why})")
    return float(judged.stdout)


_JUDGE = (
    "import sys; from newsletter.core.settings import secret_bits; "
    "print(secret_bits(sys.stdin.buffer.read().decode()))"
)


def _secret_key(variable: str, value: str | None, _default: Any) -> str | None:
    if value is None:
        return None  # from_env decides: required outside dev, a random one per .dev/ in dev
    if len(value) < 16:
        raise SettingsError(
            f"{variable}: too short, use at least 16 characters (make one: `{HOW_TO_MAKE_A_KEY}`)"
        )
    bits = judged_bits(value)
    if bits < MIN_SECRET_BITS:
        raise SettingsError(
            f"{variable}: too easy to guess (about {bits:.0f} bits, at least "
            f"{MIN_SECRET_BITS} needed); make a random one: `{HOW_TO_MAKE_A_KEY}`"
        )
    return value


def dev_secret(dev_dir: Path) -> str:
    """The dev server's signing key: random, made once per ``.dev/`` directory
    (mode 0600), so no two checkouts share one and none is written in code."""
    path = dev_dir / DEV_SECRET_FILE
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = ""
    if len(key) < 32:
        dev_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key + "\n")
    return key


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _database_url(variable: str, value: str | None, _default: Any) -> str | None:
    if value is not None and urlsplit(value).scheme not in ("postgres", "postgresql"):
        scheme = urlsplit(value).scheme or "nothing"
        raise SettingsError(f"{variable}: must start with postgresql://, got {scheme!r}")
    return value


def _smtp(variable: str, value: str | None, default: Any) -> tuple[SmtpTarget, ...]:
    """``smtp://a:25,smtp://b:25``: relays in order of preference (the first
    healthy one is used, the next while it is in trouble)."""
    if value is None:
        return default  # type: ignore[no-any-return]
    urls = [url.strip() for url in value.split(",")]
    if not any(urls):
        raise SettingsError(f"{variable}: no relay given")
    if not all(urls):
        raise SettingsError(f"{variable}: an empty entry between commas")
    try:
        relays = tuple(SmtpTarget.parse(url) for url in urls)
    except SettingsError as exc:
        if len(urls) == 1:
            raise
        raise SettingsError(
            f"{exc} (relays are separated by commas: a comma inside a user name or "
            "password must be written %2C)"
        ) from None
    names = [f"{r.host}:{r.port}" for r in relays]
    if len(set(names)) != len(names):
        raise SettingsError(f"{variable}: a relay is listed twice")
    return relays


def _base_url(variable: str, value: str | None, default: Any) -> str:
    url = (value or default).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{variable}: must be an http(s) URL, got {url!r}")
    return url


def _ascii_address(variable: str, local: str, domain: str) -> tuple[str, str]:
    """An IDN domain as its A-label (``김포시.kr`` → ``xn--4k0bw40bnom.kr``):
    the address goes into headers, Message-IDs, VERP senders and DKIM's d=,
    all 7-bit, and to relays that need not speak SMTPUTF8."""
    if not local.isascii():
        raise SettingsError(f"{variable}: the part before @ must be ASCII (relays need SMTPUTF8)")
    try:
        return local, domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise SettingsError(f"{variable}: {domain!r} is not a usable domain name") from None


def _mailbox(variable: str, value: str | None, default: Any) -> str:
    text = value or default
    display, addr = parseaddr(text)
    if "@" not in addr or any(c in text for c in "\r\n"):
        raise SettingsError(f"{variable}: not a mailbox like '김포시 <news@gimpo.go.kr>'")
    local, domain = _ascii_address(variable, *addr.rsplit("@", 1))
    return str(Address(display_name=display, username=local, domain=domain))


def _address(variable: str, value: str | None, default: Any) -> str | None:
    if value is None:
        return default  # type: ignore[no-any-return]
    if "@" not in value:
        raise SettingsError(f"{variable}: must be an e-mail address")
    return "@".join(_ascii_address(variable, *value.rsplit("@", 1)))


def _timezone(variable: str, value: str | None, default: Any) -> str:
    name = value or default
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{variable}: unknown time zone {name!r}") from None
    return str(name)


def _pem(variable: str, value: str | None, _default: Any) -> str | None:
    """A PEM key, or the path of a file holding one."""
    if value is None or "BEGIN" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise SettingsError(f"{variable}: neither a PEM key nor a readable file: {value!r}")
    return path.read_text()


def _port(variable: str, value: str | None, default: Any) -> int | None:
    if value is None:
        return default  # type: ignore[no-any-return]
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise SettingsError(f"{variable}: expected a port number 1-65535, got {value!r}")
    return int(value)


def _host(variable: str, value: str | None, default: Any) -> str:
    host = value or default
    if not is_loopback(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise SettingsError(
                f"{variable}: expected an IP address to listen on, got {host!r}"
            ) from None
    return str(host)


def _proxies(variable: str, value: str | None, default: Any) -> str:
    entries = [entry.strip() for entry in (value or default).split(",") if entry.strip()]
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"{variable}: {entry!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return ",".join(entries)


def _issuer(variable: str, value: str | None, _default: Any) -> str | None:
    """The SSO's issuer URL: https, or http on a loopback address (a test IdP)."""
    if value is None:
        return None
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise SettingsError(f"{variable}: must be an https:// URL, got {value!r}")
    return value.rstrip("/")


def _city(variable: str, value: str | None, default: Any) -> City:
    if value is None:
        return default  # type: ignore[no-any-return]
    try:
        return load_city(Path(value))
    except CityFileError as exc:
        raise SettingsError(f"{variable}: {exc}") from None


def _origins(variable: str, value: str | None, default: Any) -> tuple[str, ...]:
    """``https://www.gimpo.go.kr,https://news.gimpo.go.kr``: exact origins, no paths."""
    origins = []
    for entry in (value or "").split(","):
        origin = entry.strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise SettingsError(
                f"{variable}: {entry.strip()!r} is not an origin like https://www.gimpo.go.kr"
            )
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins) or default


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a web or worker process needs to know, validated."""

    database_url: str | None = setting(None, "DATABASE_URL", parse=_database_url)
    smtp_relays: tuple[SmtpTarget, ...] = setting(
        (SmtpTarget("127.0.0.1", 2525),), "SMTP_URL", parse=_smtp
    )
    # No default on purpose: from_env requires one outside dev and makes a
    # random one per .dev/ directory in dev; never a constant in the code.
    secret_key: str = setting("", "SECRET_KEY", parse=_secret_key)
    base_url: str = setting("http://127.0.0.1:8000", "BASE_URL", parse=_base_url)
    from_address: str = setting("김포시 <news@gimpo.go.kr>", "FROM", parse=_mailbox)
    list_id: str = setting("김포시 뉴스레터 <newsletter.gimpo.go.kr>", "LIST_ID")
    rate_per_second: float = setting(20.0, "RATE_PER_SECOND", minimum=0.1)
    rate_per_hour: int | None = setting(None, "RATE_PER_HOUR", minimum=1)
    smtp_connections: int = setting(10, "SMTP_CONNECTIONS", minimum=1)
    batch_size: int = setting(200, "BATCH_SIZE", minimum=1)
    max_attempts: int = setting(6, "MAX_ATTEMPTS", minimum=1)
    timezone: str = setting("Asia/Seoul", "TIMEZONE", parse=_timezone)
    dkim_selector: str | None = setting(None, "DKIM_SELECTOR")
    dkim_private_key: str | None = setting(None, "DKIM_PRIVATE_KEY", parse=_pem)
    dkim_domain: str | None = setting(None, "DKIM_DOMAIN")
    # The pre-send check asks DNS here (host or host:port); unset: the system resolver.
    dns_resolver: str | None = setting(None, "DNS_RESOLVER")
    bounce_address: str | None = setting(None, "BOUNCE_ADDRESS", parse=_address)
    confirm_max_age_seconds: int = setting(
        72 * 3600, "CONFIRM_MAX_AGE_HOURS", minimum=1, scale=3600
    )
    reconfirm_after_days: int = setting(730, "RECONFIRM_AFTER_DAYS", minimum=1)
    reconfirm_grace_days: int = setting(30, "RECONFIRM_GRACE_DAYS", minimum=1)
    retention_days: int = setting(30, "RETENTION_DAYS", minimum=0)
    signup_limit_per_ip_per_hour: int = setting(20, "SIGNUP_LIMIT_PER_IP_PER_HOUR", minimum=1)
    signup_limit_per_address_per_day: int = setting(
        3, "SIGNUP_LIMIT_PER_ADDRESS_PER_DAY", minimum=1
    )
    consent_version: str = setting("2026-11", None)
    # Proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips):
    # without the right value every resident shares the proxy's address and the
    # per-IP signup limit turns into a city-wide one.
    trusted_proxies: str = setting("127.0.0.1", "TRUSTED_PROXIES", parse=_proxies)
    # Console sessions: logged out after this much inactivity, and in any case
    # after the maximum (a working day), as PIPA's safeguards expect.
    session_idle_seconds: int = setting(30 * 60, "SESSION_IDLE_MINUTES", minimum=5, scale=60)
    session_max_seconds: int = setting(12 * 3600, "SESSION_MAX_HOURS", minimum=1, scale=3600)
    # Optional OpenID Connect login (the city's SSO): off unless all three are set.
    oidc_issuer: str | None = setting(None, "OIDC_ISSUER", parse=_issuer)
    oidc_client_id: str | None = setting(None, "OIDC_CLIENT_ID")
    oidc_client_secret: str | None = setting(None, "OIDC_CLIENT_SECRET")
    oidc_label: str = setting("김포시 통합 로그인", "OIDC_LABEL")
    # Bounce reports are untrusted mail: bigger ones are refused unread.
    bounce_max_bytes: int = setting(1024 * 1024, "BOUNCE_MAX_BYTES", minimum=1024)
    # Prometheus metrics: never on the public port. `serve` answers /metrics
    # on METRICS_HOST:METRICS_PORT when set (and to an ops key on the public
    # port); each worker exports its own figures there.
    metrics_port: int | None = setting(None, "METRICS_PORT", parse=_port)
    metrics_host: str = setting("127.0.0.1", "METRICS_HOST", parse=_host)
    # A client must send its request headers within this, and its body
    # without pausing longer than this: slow clients cannot hold connections.
    http_header_timeout_seconds: float = setting(10.0, "HTTP_HEADER_TIMEOUT_SECONDS", minimum=1)
    http_body_timeout_seconds: float = setting(15.0, "HTTP_BODY_TIMEOUT_SECONDS", minimum=1)
    # A whole request (line, headers and body) must arrive within this (408),
    # however steadily it trickles in.
    http_request_timeout_seconds: float = setting(120.0, "HTTP_REQUEST_TIMEOUT_SECONDS", minimum=1)
    # Connections one client address may hold at once (more are answered 429);
    # a trusted proxy's are not counted, it bounds its own clients.
    http_connections_per_client: int = setting(64, "HTTP_CONNECTIONS_PER_CLIENT", minimum=1)
    # The request line and headers together, and how many headers (431).
    http_header_max_bytes: int = setting(32 * 1024, "HTTP_HEADER_MAX_BYTES", minimum=1024)
    http_header_max_count: int = setting(100, "HTTP_HEADER_MAX_COUNT", minimum=10)
    # Who read which personal data (PIPA safeguards, art. 8: at least a year).
    access_log_retention_days: int = setting(730, "ACCESS_LOG_RETENTION_DAYS", minimum=365)
    # Who sends the newsletter (name, logo, department, address, phone, privacy
    # policy): a TOML file, see README; Gimpo's public details by default.
    city: City = setting(GIMPO, "CITY_FILE", parse=_city)
    # Sites (the city homepage) that may frame /embed/subscribe and post the
    # signup form from their own pages.
    embed_origins: tuple[str, ...] = setting((), "EMBED_ORIGINS", parse=_origins)
    # A confirmation link opened this soon after the mail was made is probably
    # a mail scanner: the page then waits for a click instead of confirming by itself.
    confirm_click_window_seconds: int = setting(120, "CONFIRM_CLICK_WINDOW_SECONDS", minimum=0)
    # Signups without the proof-of-work answer (no JavaScript) are taken only
    # while their IP has made fewer signups than this in the last hour (of
    # either kind); with the answer, SIGNUP_LIMIT_PER_IP_PER_HOUR applies.
    signup_limit_without_challenge_per_ip_per_hour: int = setting(
        5, "SIGNUP_LIMIT_WITHOUT_CHALLENGE_PER_IP_PER_HOUR", minimum=1
    )
    dev: bool = setting(False, "DEV")
    dev_dir: Path = setting(Path(".dev"), "DEV_DIR")

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` whenever the public URL is https, whatever
        scheme the request reached us with (a TLS-terminating proxy)."""
        return self.base_url.startswith("https://")

    @property
    def smtp(self) -> SmtpTarget:
        """The first (preferred) relay of ``SMTP_URL``."""
        return self.smtp_relays[0]

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def from_domain(self) -> str:
        return parseaddr(self.from_address)[1].rpartition("@")[2]

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes``; ``smtp=target`` stands for ``smtp_relays=(target,)``."""
        if "smtp" in changes:
            changes["smtp_relays"] = (changes.pop("smtp"),)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dev: bool = False) -> Settings:
        env = os.environ if environ is None else environ
        values = {f.name: _read(f, env) for f in dataclasses.fields(cls) if f.metadata["variable"]}
        dev = values["dev"] = dev or values["dev"]
        secret = values["secret_key"]
        if secret is None:
            if not dev:
                raise SettingsError(
                    f"{PREFIX}SECRET_KEY: required outside dev mode "
                    f"(set a long random value, e.g. `{HOW_TO_MAKE_A_KEY}`)"
                )
            values["secret_key"] = dev_secret(values["dev_dir"])
        elif not dev and any(marker in secret.lower() for marker in PLACEHOLDER_MARKERS):
            raise SettingsError(
                f"{PREFIX}SECRET_KEY: looks like a placeholder; anyone who knows it can forge "
                "unsubscribe and confirmation links — set a long random value"
            )
        if values["database_url"] is None and not dev:
            raise SettingsError(f"{PREFIX}DATABASE_URL: required outside dev mode")
        oidc = [values["oidc_issuer"], values["oidc_client_id"], values["oidc_client_secret"]]
        if any(v is not None for v in oidc) and not all(v is not None for v in oidc):
            raise SettingsError(
                f"{PREFIX}OIDC_ISSUER: set OIDC_ISSUER, OIDC_CLIENT_ID and "
                "OIDC_CLIENT_SECRET together, or none of them"
            )
        if (values["dkim_selector"] is None) != (values["dkim_private_key"] is None):
            raise SettingsError(
                f"{PREFIX}DKIM_SELECTOR: set both DKIM_SELECTOR and DKIM_PRIVATE_KEY, or neither"
            )
        return cls(**values)


def _read(declared: dataclasses.Field[Any], env: Mapping[str, str]) -> Any:
    """One field's value from the environment, by its declaration."""
    variable = PREFIX + declared.metadata["variable"]
    raw = env.get(variable)
    text = raw.strip() if raw is not None and raw.strip() else None
    parse: Parser | None = declared.metadata["parse"]
    if parse is not None:
        return parse(variable, text, declared.default)
    kind = str(declared.type).replace(" | None", "")
    if text is None:
        return declared.default
    if kind == "bool":
        return _flag(variable, text)
    if kind == "Path":
        return Path(text)
    if kind in ("int", "float"):
        return _number(
            variable, text, kind, declared.metadata["minimum"], declared.metadata["scale"]
        )
    return text


def _flag(variable: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{variable}: expected true/false, got {text!r}")


def _number(variable: str, text: str, kind: str, minimum: float | None, scale: int) -> float:
    try:
        parsed: float = int(text) if kind == "int" else float(text)
    except ValueError:
        parsed = math.nan
    if not math.isfinite(parsed):
        article = "an integer" if kind == "int" else "a number"
        raise SettingsError(f"{variable}: expected {article}, got {text!r}")
    if minimum is not None and parsed < minimum:
        raise SettingsError(f"{variable}: must be at least {minimum:g}, got {text!r}")
    return parsed * scale
