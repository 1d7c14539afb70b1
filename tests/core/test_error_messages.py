"""Domain errors speak two languages from one message: the Korean the console
shows, marked where it is raised, and the English catalog's wording the JSON
API and the command line say. A raise with an unmarked message would reach the
console in whatever language it was typed; this test finds every raise in the
package and fails on one whose message is not marked with ``N_`` (directly or
through a module constant). tests/core/test_i18n.py fails while a marked one
has no English translation."""

from __future__ import annotations

import ast

from newsletter.core import errors, i18n
from newsletter.core.errors import Conflict, InvalidInput, NotFound
from tests.conftest import ROOT

DOMAIN_ERRORS = {"DomainError", "InvalidInput", "NotFound", "Conflict", "RateLimited"}
# How many raises in each module still carry a plain message (Korean, or
# English the console cannot translate), waiting for their turn. The counts
# may only go down.
NOT_YET = {
    "newsletter/audience/import_jobs.py": 1,
    "newsletter/audience/lifecycle.py": 1,
    "newsletter/audience/roster.py": 7,
    "newsletter/core/records.py": 1,
    "newsletter/editorial/feeds.py": 3,
    "newsletter/editorial/issues.py": 5,
    "newsletter/editorial/media.py": 7,
    "newsletter/editorial/news.py": 2,
    "newsletter/ops/apikeys.py": 3,
    "newsletter/ops/delivery_record.py": 3,
    "newsletter/ops/stats.py": 1,
    "newsletter/ops/users.py": 18,
    "newsletter/web/api/news.py": 3,
    "newsletter/web/api/subscribers.py": 5,
    "newsletter/web/pages/assets.py": 1,
    "newsletter/web/console/fields.py": 4,
    "newsletter/web/console/login.py": 1,
    "newsletter/web/console/news.py": 2,
    "newsletter/web/console/subscribers.py": 3,
    "newsletter/web/http/forms.py": 1,
}


def _is_marked(node: ast.expr, marked_names: set[str]) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "N_"
    return isinstance(node, ast.Name) and node.id in marked_names


def unmarked_raises() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in sorted((ROOT / "newsletter").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        marked_names = {
            target.id
            for statement in tree.body
            if isinstance(statement, ast.Assign) and _is_marked(statement.value, set())
            for target in statement.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in DOMAIN_ERRORS or not node.args:
                continue
            if not _is_marked(node.args[0], marked_names):
                name = str(path.relative_to(ROOT))
                found.setdefault(name, []).append(node.lineno)
    return found


def test_every_domain_error_is_raised_with_a_marked_message() -> None:
    grown = {
        module: lines
        for module, lines in unmarked_raises().items()
        if len(lines) > NOT_YET.get(module, 0)
    }
    assert grown == {}, "mark these messages with N_ and run `make messages`"


def test_the_console_and_the_api_say_one_fact_in_two_languages() -> None:
    empty = InvalidInput("%(name)s을(를) 입력해 주세요.", name=errors.field_name("title"))
    assert empty.text("ko") == "제목을(를) 입력해 주세요."
    assert empty.detail == str(empty) == "title must not be empty"
    assert i18n.gettext_for("en").gettext(empty.message) == "%(name)s must not be empty"
    missing = NotFound("#%(id)s 호가 없습니다. 이미 지워졌을 수 있습니다.", id=7)
    assert (missing.text("ko"), missing.detail) == (
        "#7 호가 없습니다. 이미 지워졌을 수 있습니다.",
        "no issue 7",
    )
    untranslated = Conflict("마지막 관리자 계정은 비활성화하거나 역할을 바꿀 수 없습니다.")
    assert untranslated.text("ko") == untranslated.detail  # a plain Korean message stays itself
