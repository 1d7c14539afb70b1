"""Type aliases for the dependencies app.py provides, so handlers stay short:
``async def handler(db: DB, settings: Config) -> ...``."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.ops.audit import Actor

DB: TypeAlias = NamedDependency[Database]
Config: TypeAlias = NamedDependency[Settings]
Signer: TypeAlias = NamedDependency[Tokens]
Who: TypeAlias = NamedDependency[Actor]
