"""Domain errors speak two languages from one message: the Korean the console
shows, marked where it is raised, and the English catalog's wording the JSON
API and the command line say. A raise with an unmarked message would reach the
console in whatever language it was typed; this test finds every raise in the
package and fails on one whose message is not marked with ``N_`` (directly or
through a module constant). tests/core/test_i18n.py fails while a marked one
has no English translation."""

from __future__ import annotations

import ast
from functools import cache

from newsletter.core import errors, i18n
from newsletter.core.errors import Conflict, InvalidInput, NotFound
from tests.conftest import ROOT


@cache
def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(ROOT)): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "newsletter").rglob("*.py"))
    }


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # bounces.BounceTooLarge, errors.NO_ISSUE
        return node.attr
    return None


def domain_errors(modules: dict[str, ast.Module]) -> set[str]:
    """DomainError and every class that inherits from it, wherever it is defined."""
    found = {"DomainError"}
    grew = True
    while grew:
        grew = False
        for tree in modules.values():
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ClassDef)
                    and node.name not in found
                    and any(_name(base) in found for base in node.bases)
                ):
                    found.add(node.name)
                    grew = True
    return found


def _is_marked(node: ast.expr, marked_names: set[str]) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        # The id itself is a plain literal: values go in as placeholders.
        return (
            node.func.id == "N_"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        )
    return _name(node) in marked_names


def unmarked_raises(modules: dict[str, ast.Module]) -> dict[str, list[int]]:
    """Every call of a domain error whose message is not an ``N_`` mark, or a
    module constant made by one, by module and line."""
    classes = domain_errors({**_modules(), **modules})
    marked_names = {
        target.id
        for tree in modules.values()
        for statement in tree.body
        if isinstance(statement, ast.Assign) and _is_marked(statement.value, set())
        for target in statement.targets
        if isinstance(target, ast.Name)
    }
    found: dict[str, list[int]] = {}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _name(node.func) in classes and node.args):
                continue
            if not _is_marked(node.args[0], marked_names):
                found.setdefault(name, []).append(node.lineno)
    return found


def test_the_scan_knows_every_domain_error() -> None:
    classes = domain_errors(_modules())
    assert {"InvalidInput", "NotFound", "Conflict", "RateLimited"} <= classes
    assert {"BounceTooLarge", "ChallengeFailed", "Unavailable"} <= classes


def test_every_domain_error_is_raised_with_a_marked_message() -> None:
    unmarked = unmarked_raises(_modules())
    assert unmarked == {}, "mark these messages with N_ and run `make messages`"


def test_the_scan_finds_bare_messages_of_any_domain_error() -> None:
    source = """
from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_
GONE = N_("없습니다.")
class TooBig(InvalidInput):
    pass
def check(size: int) -> None:
    raise InvalidInput(N_("비었습니다."))
    raise NotFound(GONE)
    raise InvalidInput("bare", field="x")
    raise TooBig(f"{size} is too big")
    raise errors.Conflict("다른 " + "문장")
    raise InvalidInput(N_(f"{size}자가 넘습니다."))
"""
    assert unmarked_raises({"m.py": ast.parse(source)}) == {"m.py": [10, 11, 12, 13]}


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
    untranslated = Conflict("아직 아무도 옮기지 않은 문장입니다.")
    assert untranslated.text("ko") == untranslated.detail  # a plain Korean message stays itself
