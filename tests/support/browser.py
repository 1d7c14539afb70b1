"""A real browser for page tests, the residents' and the console's alike:
Debian's chromium driven by Playwright, axe-core from npm and how its findings
read, and the reflow check (`newsletter serve` itself: tests/support/processes.py).

Playwright's own browser downloads are never used (no `playwright install`):
it drives the distribution's chromium, which gets security updates with the
system. Whatever is missing is installed with the system's own tools; a test
skips, saying why, only where this machine cannot have it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Without them Korean text is boxes in the screenshots kept of a failure.
KOREAN_FONTS = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
AXE_VERSION = "4.14"  # npm axe-core, major.minor pinned: new rules arrive with minor versions
AXE_DIR = ROOT / ".dev" / "npm"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def install(what: str, command: list[str]) -> str | None:
    """Run an installer; return why it failed, or None."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{what}: {exc}"
    if done.returncode != 0:
        return f"{what}: exit {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


def apt_install(packages: list[str], check: Path) -> str | None:
    """Install Debian packages until ``check`` exists; return why not, or None."""
    if check.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{check} is missing and this system has no apt-get to install it"
    what = f"apt-get install {' '.join(packages)}"
    command = ["apt-get", "install", "-y", *packages]
    problem = install(what, command)
    if problem and "Could not get lock" in problem:  # another apt run: wait once, retry
        subprocess.run(["sleep", "30"], check=False)
        problem = install(what, command)
    if problem and not check.exists():  # a fresh machine's package lists may be stale
        install("apt-get update", ["apt-get", "update"])
        problem = install(what, command)
    return None if check.exists() else problem or f"{what} did not install {check}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium with Korean fonts (installed with apt if missing) and
    the playwright package."""
    if importlib.util.find_spec("playwright") is None:
        problem = install(
            "pip install playwright", [sys.executable, "-m", "pip", "install", "-q", "playwright"]
        )
        if problem or importlib.util.find_spec("playwright") is None:
            pytest.skip(f"playwright cannot be installed here ({problem})")
    problem = apt_install(["chromium", "fonts-noto-cjk"], CHROMIUM)
    if problem:
        pytest.skip(f"chromium cannot be installed here ({problem})")
    apt_install(["fonts-noto-cjk"], KOREAN_FONTS)
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def axe() -> Path:
    """axe-core's browser bundle, from npm into the checkout's .dev/npm (git-ignored)."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        if shutil.which("npm") is None:
            apt_install(["npm"], Path("/usr/bin/npm"))
        if shutil.which("npm") is None:
            pytest.skip("npm is missing and cannot be installed here, so axe-core cannot be")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        problem = install(
            "npm install axe-core",
            ["npm", "install", "--prefix", str(AXE_DIR), "--no-save", f"axe-core@{AXE_VERSION}"],
        )
        if not script.exists():
            pytest.skip(f"axe-core cannot be installed here ({problem})")
    return script


async def axe_violations(target: Any, axe_script: Path) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2.2 AA and best practice) on a Playwright page or frame."""
    if not await target.evaluate("typeof window.axe !== 'undefined'"):
        await target.add_script_tag(path=str(axe_script))
    result = await target.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    violations: list[dict[str, Any]] = result["violations"]
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["html"][:200] for n in v["nodes"][:3]],
        }
        for v in violations
    ]


def described(violations: list[dict[str, Any]]) -> str:
    """axe-core's findings, readable in an assertion message."""
    return json.dumps(violations, ensure_ascii=False, indent=1)


async def overflows_at(page: Any, width: int) -> bool:
    """Whether the page scrolls sideways at this viewport width (WCAG 1.4.10 reflow)."""
    size = page.viewport_size
    await page.set_viewport_size({"width": width, "height": 844})
    wide: bool = await page.evaluate(
        "() => document.documentElement.scrollWidth > window.innerWidth + 1"
    )
    await page.set_viewport_size(size)
    return wide
