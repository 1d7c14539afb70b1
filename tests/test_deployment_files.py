"""Docker cannot run here, so the deployment files are checked against the code instead."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from newsletter.cli import build_parser
from newsletter.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, dict[str, dict[str, object]]]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def resolve(value: str, env: dict[str, str]) -> str:
    """Apply compose's ${VAR:-default} and ${VAR:?error} interpolation."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in env:
            return env[name]
        if kind == "?":
            raise LookupError(f"compose refuses to start without {name}: {rest}")
        return rest

    return re.sub(r"\$\{([A-Z_]+):([-?])([^}]*)\}", one, value)


def test_compose_has_the_documented_services() -> None:
    services = compose()["services"]
    assert {"postgres", "web", "worker", "mailpit", "migrate"} <= set(services)
    assert services["worker"]["deploy"] == {"replicas": 2}


def test_compose_commands_are_real_cli_commands() -> None:
    parser = build_parser()
    for name, service in compose()["services"].items():
        command = service.get("command")
        if name in ("postgres", "mailpit"):
            continue
        assert isinstance(command, list)
        parsed = parser.parse_args([str(part) for part in command])
        assert parsed.command in ("serve", "worker", "migrate")


def test_compose_requires_a_real_secret_key() -> None:
    environment = compose()["services"]["web"]["environment"]
    assert isinstance(environment, dict)
    with pytest.raises(LookupError, match="NEWSLETTER_SECRET_KEY"):
        resolve(str(environment["NEWSLETTER_SECRET_KEY"]), {})


def test_compose_environment_is_valid_configuration() -> None:
    operator = {"NEWSLETTER_SECRET_KEY": "kP9v2sLq8ZrT4wXy7NbC1dEf"}
    for name in ("web", "worker", "migrate"):
        environment = compose()["services"][name]["environment"]
        assert isinstance(environment, dict)
        env = {key: resolve(str(value), operator) for key, value in environment.items()}
        settings = Settings.from_env(env)
        assert settings.database_url is not None
        assert "@postgres:5432/" in settings.database_url
        assert settings.smtp.host == "mailpit"


def test_dockerfile_ships_sql_and_templates_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --chown=root:root sql ./sql" in dockerfile
    assert "COPY --chown=root:root templates ./templates" in dockerfile
    assert "NEWSLETTER_SQL_DIR=/app/sql" in dockerfile
    assert "NEWSLETTER_TEMPLATES_DIR=/app/templates" in dockerfile
    # The console's style sheet, script and vendored htmx are served from the image.
    assert "COPY --chown=root:root static ./static" in dockerfile
    assert "NEWSLETTER_STATIC_DIR=/app/static" in dockerfile
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user
    assert user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["newsletter"]' in dockerfile


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__file__).parents[1] / ".venv/bin/hadolint")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_from_the_lock() -> None:
    """The image gets uv.lock's versions and hashes, like `make dev`, and the same uv."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "COPY requirements-uv.txt" in dockerfile
    assert "--require-hashes -r requirements-uv.txt" in dockerfile
    assert "--require-hashes" in makefile
    assert "-r requirements-uv.txt" in makefile
    assert "COPY pyproject.toml uv.lock" in dockerfile
    installs = re.findall(r"^RUN (?:pip|uv) .*$", dockerfile, re.MULTILINE)
    assert all("--locked" in line for line in installs if line.startswith("RUN uv sync"))
    assert not [line for line in installs if line.startswith("RUN pip") and " -r " not in line]
    assert "sync --locked" in makefile


def test_lock_matches_pyproject() -> None:
    """A dependency added to pyproject.toml without `make lock` fails here, not on a laptop."""
    uv = ROOT / ".tools/bin/uv"
    assert uv.exists(), "uv is bootstrapped by `make .venv/.installed`"
    result = subprocess.run(
        [str(uv), "lock", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, "uv.lock is stale, run `make lock`:\n" + result.stderr


def test_every_locked_package_has_hashes() -> None:
    import tomllib

    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = [p for p in lock["package"] if p["source"].get("editable") != "."]
    assert len(packages) > 20
    for package in packages:
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, package["name"]
        assert all(str(f.get("hash", "")).startswith("sha256:") for f in files), package["name"]
