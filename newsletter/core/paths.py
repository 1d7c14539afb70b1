"""Where the SQL files, templates and static files (styles, scripts, the logo) live.

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
# Styles, scripts, vendored libraries and the default city logo, served under /static.
STATIC_DIR = Path(os.environ.get("NEWSLETTER_STATIC_DIR") or _CHECKOUT / "static")
