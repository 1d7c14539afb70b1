"""Configuration: a bad or missing value stops start-up with one line naming it."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.core import settings as settings_module
from newsletter.core.settings import HOW_TO_MAKE_A_KEY, Settings, SettingsError
from tests.conftest import TEST_SECRET_KEY

BASE = {
    "NEWSLETTER_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
}


def test_defaults_are_sensible() -> None:
    settings = Settings.from_env(BASE)
    assert settings.timezone == "Asia/Seoul"
    assert settings.from_address == "김포시 <news@gimpo.go.kr>"
    assert settings.from_domain == "gimpo.go.kr"
    assert settings.smtp.host == "127.0.0.1"
    assert settings.rate_per_hour is None


def test_smtp_url_with_credentials_and_starttls() -> None:
    settings = Settings.from_env(
        {**BASE, "NEWSLETTER_SMTP_URL": "smtp://news%40gimpo:p%40ss@mail.example:587?starttls=1"}
    )
    assert settings.smtp.host == "mail.example"
    assert settings.smtp.port == 587
    assert settings.smtp.username == "news@gimpo"
    assert settings.smtp.password == "p@ss"
    assert settings.smtp.starttls is True
    assert settings.smtp.use_tls is False


def test_smtp_url_password_with_a_comma_is_written_percent_encoded() -> None:
    settings = Settings.from_env(
        {**BASE, "NEWSLETTER_SMTP_URL": "smtp://news:p%2Cw@a.example:25,smtp://b.example:25"}
    )
    assert [(r.host, r.password) for r in settings.smtp_relays] == [
        ("a.example", "p,w"),
        ("b.example", None),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "smtp://news:s3cr,et@a.example:25",  # a raw comma splits the password in two
        "smtp://news:s3cr,et@a.example:25,smtp://b.example:25",
        "smtp://news:s3cret@:25",  # no host
        "smtp://news:s3cret@a.example:25x",
        "smtp://b.example:25,smtp://news:s3cret@:25",
    ],
)
def test_smtp_url_errors_never_show_the_password(value: str) -> None:
    """The line lands in logs and CI output: it names the mistake, never the secret."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, "NEWSLETTER_SMTP_URL": value})
    message = str(caught.value)
    assert message.startswith("NEWSLETTER_SMTP_URL:")
    assert "\n" not in message
    assert "s3cr" not in message
    if "," in value:
        assert "%2C" in message, "the fix for a comma in a password is not given"


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"NEWSLETTER_SECRET_KEY": ""}, "NEWSLETTER_SECRET_KEY"),
        ({"NEWSLETTER_SECRET_KEY": "short"}, "NEWSLETTER_SECRET_KEY"),
        ({"NEWSLETTER_DATABASE_URL": ""}, "NEWSLETTER_DATABASE_URL"),
        ({"NEWSLETTER_DATABASE_URL": "mysql://x"}, "NEWSLETTER_DATABASE_URL"),
        ({"NEWSLETTER_SMTP_URL": "http://mail"}, "NEWSLETTER_SMTP_URL"),
        ({"NEWSLETTER_SMTP_URL": "smtp://mail:notaport"}, "NEWSLETTER_SMTP_URL"),
        ({"NEWSLETTER_RATE_PER_SECOND": "fast"}, "NEWSLETTER_RATE_PER_SECOND"),
        ({"NEWSLETTER_RATE_PER_SECOND": "0"}, "NEWSLETTER_RATE_PER_SECOND"),
        ({"NEWSLETTER_RATE_PER_HOUR": "-5"}, "NEWSLETTER_RATE_PER_HOUR"),
        ({"NEWSLETTER_SMTP_CONNECTIONS": "1.5"}, "NEWSLETTER_SMTP_CONNECTIONS"),
        ({"NEWSLETTER_TIMEZONE": "Mars/Olympus"}, "NEWSLETTER_TIMEZONE"),
        ({"NEWSLETTER_FROM": "no address here"}, "NEWSLETTER_FROM"),
        ({"NEWSLETTER_FROM": "김포시 <소식@gimpo.go.kr>"}, "NEWSLETTER_FROM"),
        ({"NEWSLETTER_BOUNCE_ADDRESS": "반송@gimpo.go.kr"}, "NEWSLETTER_BOUNCE_ADDRESS"),
        ({"NEWSLETTER_BASE_URL": "ftp://x"}, "NEWSLETTER_BASE_URL"),
        ({"NEWSLETTER_DKIM_SELECTOR": "s1"}, "NEWSLETTER_DKIM_SELECTOR"),
        ({"NEWSLETTER_SECRET_KEY": "change-me-to-a-long-random-value"}, "NEWSLETTER_SECRET_KEY"),
        ({"NEWSLETTER_RATE_PER_SECOND": "inf"}, "NEWSLETTER_RATE_PER_SECOND"),
        ({"NEWSLETTER_RATE_PER_SECOND": "nan"}, "NEWSLETTER_RATE_PER_SECOND"),
        ({"NEWSLETTER_RATE_PER_SECOND": "1e400"}, "NEWSLETTER_RATE_PER_SECOND"),
        ({"NEWSLETTER_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"}, "NEWSLETTER_TRUSTED_PROXIES"),
    ],
)
def test_bad_values_name_their_variable(changes: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, **changes})
    message = str(caught.value)
    assert message.startswith(variable + ":")
    assert "\n" not in message


def test_dev_mode_runs_without_secret_or_database(tmp_path: Path) -> None:
    """The dev key is random, made once per .dev/ directory and kept there
    (owner-only), never a value written in the code."""
    env = {"NEWSLETTER_DEV_DIR": str(tmp_path / "one")}
    settings = Settings.from_env(env, dev=True)
    assert settings.database_url is None
    again = Settings.from_env(env, dev=True)
    assert again.secret_key == settings.secret_key  # stable: links keep working
    other = Settings.from_env({"NEWSLETTER_DEV_DIR": str(tmp_path / "two")}, dev=True)
    assert other.secret_key != settings.secret_key
    kept = tmp_path / "one" / "secret_key"
    assert kept.read_text().strip() == settings.secret_key
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    source = Path(settings_module.__file__).read_text()
    assert settings.secret_key not in source and len(settings.secret_key) >= 48


@pytest.mark.parametrize(
    "weak",
    [
        "aaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "test-secret-key-0123456789",
        "a-long-enough-secret-value",
        "correct horse battery staple",
        "Password1!Password1!Password1!",
        "qwertyuiopasdfghjklzxcvbnm",
        "abcdefghijklmnopqrstuvwxyz0123456789",
    ],
)
def test_guessable_secret_keys_are_refused_with_how_to_make_one(weak: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, "NEWSLETTER_SECRET_KEY": weak})
    message = str(caught.value)
    assert message.startswith("NEWSLETTER_SECRET_KEY:")
    assert HOW_TO_MAKE_A_KEY in message and "\n" not in message


@pytest.mark.parametrize(
    "strong",
    [
        secrets.token_urlsafe(48),
        secrets.token_urlsafe(32),
        secrets.token_hex(16),
        secrets.token_hex(32),
        "kP9v2sLq8ZrT4wXy7NbC1dEf",
    ],
)
def test_random_secret_keys_are_accepted(strong: str) -> None:
    assert Settings.from_env({**BASE, "NEWSLETTER_SECRET_KEY": strong}).secret_key == strong


def test_cli_refuses_to_start_without_secret_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE_URL"] = BASE["NEWSLETTER_DATABASE_URL"]
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "NEWSLETTER_SECRET_KEY" in lines[0]


def test_trusted_proxies_accept_addresses_and_networks() -> None:
    settings = Settings.from_env({**BASE, "NEWSLETTER_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1"})
    assert settings.trusted_proxies == "10.0.0.0/8,192.0.2.1"
    assert Settings.from_env(BASE).trusted_proxies == "127.0.0.1"
