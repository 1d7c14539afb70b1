"""Who may open a console page: the ``opt`` each route carries, written once.

The gate reads ``opt["role"]``: ``"any"`` lets every logged-in person in, a
role from :data:`newsletter.core.kinds.ROLES` that role (admins pass every
one). Routes copy these (``opt={**ADMIN, ...}``) to add their own flags.
"""

from __future__ import annotations

from typing import Any, Final

from newsletter.core.kinds import Role


def needs(role: Role | None) -> dict[str, Any]:
    return {"role": role}


ANYONE: Final = {"role": "any"}
EDITOR: Final = needs("editor")
OPS: Final = needs("ops")
ADMIN: Final = needs("admin")
