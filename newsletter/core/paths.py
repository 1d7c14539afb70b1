"""Where the SQL files and templates live.

In a source checkout they sit beside the package; an installed package (the
Docker image) is told by NEWSLETTER_SQL_DIR / NEWSLETTER_TEMPLATES_DIR /
NEWSLETTER_STATIC_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]

SQL_DIR = Path(os.environ.get("NEWSLETTER_SQL_DIR") or _CHECKOUT / "sql")
TEMPLATES_DIR = Path(os.environ.get("NEWSLETTER_TEMPLATES_DIR") or _CHECKOUT / "templates")
# The console's style sheet, script and vendored libraries, served under /static.
STATIC_DIR = Path(os.environ.get("NEWSLETTER_STATIC_DIR") or _CHECKOUT / "static")
