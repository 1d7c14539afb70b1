"""`newsletter import / export / erase` as an operator runs them (real processes)."""

from __future__ import annotations

import codecs
from pathlib import Path

from newsletter.core.db import Database
from tests.test_cli import cli_env, run_cli


async def test_import_export_erase_from_the_command_line(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    env = cli_env(database_url)
    source = tmp_path / "명단.csv"
    source.write_bytes("이메일,이름\ncli@example.com,홍길동\nbad-address,나쁨\n".encode("cp949"))
    imported = run_cli("import", str(source), "--source", "2023 설문 동의서", env=env)
    assert imported.returncode == 1  # one invalid line: reported, not silently dropped
    assert "line 3: invalid e-mail address" in imported.stderr
    assert "1 inserted" in imported.stdout and "(cp949)" in imported.stdout

    no_source = run_cli("import", str(source), env=env)
    assert no_source.returncode == 2 and "consent source" in no_source.stderr

    out = tmp_path / "export.csv"
    exported = run_cli("export", "--bom", "-o", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    data = out.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    assert "cli@example.com,홍길동,active" in data.decode("utf-8-sig")

    erased = run_cli("erase", "CLI@example.com", env=env)
    assert erased.returncode == 0, erased.stderr
    assert "erased subscriber" in erased.stdout
    assert await db.fetchrow("get_subscriber_by_email", "cli@example.com") is None
    again = run_cli("import", str(source), "--source", "다시", env=env)
    assert "line 2: skipped: address is on the suppression list" in again.stderr
