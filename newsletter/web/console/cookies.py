"""The console's cookies: their names and the one way they are made.

Every console cookie is sent only to ``/admin``, hidden from scripts, kept
off cross-site POSTs (``SameSite=Lax``) and ``Secure`` whenever the public
URL is https, so the session and the login nonce can differ only in name,
value and lifetime.
"""

from __future__ import annotations

from litestar.datastructures import Cookie

from newsletter.core.settings import Settings

SESSION_COOKIE = "nl_session"
LOGIN_COOKIE = "nl_login"  # pre-login nonce: the login form's CSRF token is derived from it
LOGIN_NONCE_SECONDS = 3600
PATH = "/admin"


def console_cookie(
    settings: Settings, name: str, value: str, *, max_age: int | None = None
) -> Cookie:
    """A console cookie. Without ``max_age`` the browser forgets it when it
    closes (the session: the server ends it after the idle timeout or the
    maximum session length anyway); ``max_age=0`` clears it."""
    return Cookie(
        key=name,
        value=value,
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=max_age,
    )
