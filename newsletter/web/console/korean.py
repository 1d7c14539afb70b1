"""Domain errors in Korean for the console.

A domain error carries its message id and values (core/errors.py); the
console says it through the catalogs in Korean, the JSON API in English.
"""

from __future__ import annotations

from newsletter.core.errors import DomainError


def explain(exc: DomainError) -> str:
    """The Korean sentence for a domain error: its message as raised (the
    catalogs' Korean id, see core/errors.py)."""
    return exc.text("ko")
