"""E-mail addresses as residents type them: validated, in one canonical form.

Signup, CSV import, erasure and test sends all go through :func:`normalise_email`,
so an address is written the same way wherever it is stored or compared.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_

MAX_EMAIL_LENGTH = 254

# A plain dot-atom local part. For these, email-validator returns the local
# part unchanged, so only the domain needs its (slower) checks, and domains
# repeat a lot (naver.com, gmail.com ...): one check per distinct domain. This
# keeps validation off the profile of both the signup form and CSV imports.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@lru_cache(maxsize=8192)
def _checked_domain(domain: str) -> str | None:
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return result.ascii_domain or result.domain


def normalise_email(raw: str) -> str:
    """Validate an address and return its canonical ASCII form.

    IDN domains become their A-label (``xn--``) form, which every SMTP server
    accepts; a non-ASCII local part would need SMTPUTF8, which most resident
    mailboxes' servers do not offer, so it is refused with a clear message.
    Ordinary addresses take a cached per-domain path with the same answers;
    anything unusual (and every error message) comes from email-validator.
    """
    candidate = raw.strip()
    local, at, domain = candidate.rpartition("@")
    if at and len(candidate) <= MAX_EMAIL_LENGTH and len(local) <= 64 and _DOT_ATOM.match(local):
        checked = _checked_domain(domain)
        if checked is not None:
            return f"{local}@{checked}"
    if not candidate:
        raise InvalidInput(N_("이메일 주소를 입력해 주세요."), field="email")
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidInput(N_("이메일 주소가 너무 깁니다."), field="email")
    if any(unicodedata.category(c) == "Cc" for c in candidate):
        raise InvalidInput(N_("이메일 주소에 사용할 수 없는 문자가 있습니다."), field="email")
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        try:
            validate_email(candidate, check_deliverability=False)
        except EmailNotValidError:
            raise InvalidInput(
                N_("올바른 이메일 주소가 아닙니다. 예: hong@example.com"), field="email"
            ) from None
        raise InvalidInput(
            N_("이메일 주소의 @ 앞부분에는 영문, 숫자와 일부 기호만 사용할 수 있습니다."),
            field="email",
        ) from None
    return result.ascii_email or result.normalized
