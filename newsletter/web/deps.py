"""Type aliases for the dependencies app.py provides, so handlers stay short:
``async def handler(db: DB, settings: Config) -> ...``."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from newsletter.audit import Actor
from newsletter.db import Database
from newsletter.settings import Settings
from newsletter.tokens import Tokens

DB: TypeAlias = NamedDependency[Database]
Config: TypeAlias = NamedDependency[Settings]
Signer: TypeAlias = NamedDependency[Tokens]
Who: TypeAlias = NamedDependency[Actor]
