"""sql/schema.sql is what the migrations build, so a reader can trust it."""

from __future__ import annotations

import shutil
from pathlib import Path

from newsletter.core.db import MIGRATIONS_DIR
from newsletter.dev import schema

NOISY_DUMP = """--
-- PostgreSQL database dump
--

\\restrict 5gcLkSK6UkRRw9sZ3mwWo7gcSUo0Q0bRBXbeaT33Z5G8Cx0QTXY3s7fdfCA3sN1

-- Dumped from database version 18.6
-- Dumped by pg_dump version 18.6

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);


CREATE TABLE public.t (
    id bigint NOT NULL
);

--
-- PostgreSQL database dump complete
--

\\unrestrict 5gcLkSK6UkRRw9sZ3mwWo7gcSUo0Q0bRBXbeaT33Z5G8Cx0QTXY3s7fdfCA3sN1
"""


async def test_schema_sql_is_what_the_migrations_build(pg_admin_url: str) -> None:
    generated = await schema.generate(pg_admin_url)
    committed = schema.SCHEMA_FILE.read_text("utf-8")
    assert generated == committed, (
        "sql/schema.sql is stale: run `make schema`\n" + schema.difference(generated, committed)
    )
    assert "CREATE TABLE public.subscribers (" in committed
    assert "CREATE TABLE public.schema_migrations (" in committed


async def test_a_new_migration_makes_the_committed_schema_stale(
    pg_admin_url: str, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    (migrations / "9999_reader_notes.sql").write_text(
        "CREATE TABLE reader_notes (id bigint PRIMARY KEY, body text NOT NULL);\n"
    )
    generated = await schema.generate(pg_admin_url, migrations=migrations)
    assert generated != schema.SCHEMA_FILE.read_text("utf-8")
    assert "CREATE TABLE public.reader_notes (" in generated
    assert "+CREATE TABLE public.reader_notes (" in schema.difference(
        generated, schema.SCHEMA_FILE.read_text("utf-8")
    )


def test_dump_noise_of_one_pg_dump_build_is_dropped() -> None:
    cleaned = schema.normalise(NOISY_DUMP)
    assert cleaned == schema.HEADER + "CREATE TABLE public.t (\n    id bigint NOT NULL\n);\n"
