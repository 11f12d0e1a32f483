"""The console's files travel with the package: every file under ``bus/console/static`` is
matched by a ``package-data`` pattern (so a wheel and ``pip install -e .`` carry it), and no
page loads anything from another host (no CDN: the console works with no internet)."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "bus" / "console" / "static"


def test_every_console_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["bus"]
    files = [p.relative_to(ROOT / "bus").as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert len(files) >= 10
    missing = [f for f in files if not any(fnmatch(f, pat) for pat in patterns)]
    assert missing == []


def test_no_file_reaches_another_host() -> None:
    remote = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|@import\s+url\(\s*["']?https?:|"""
                        r"""from\s+["']https?:|import\(\s*["']https?:""")  # fmt: skip
    offenders = [
        p.name for p in STATIC.rglob("*") if p.is_file() and remote.search(p.read_text("utf-8"))
    ]
    assert offenders == []


def test_one_panel_helper_builds_the_sections_that_may_be_unavailable() -> None:
    """Whether this server has a part's endpoint, and the "not available" section when it has
    not, are decided in ``panel()`` of the shared ``pages/generic.js`` only: no page builds its
    own copy."""
    built_here = re.compile(r"""unavailable\(|dataset\.available\s*=|firstPath\(""")
    pages = STATIC / "js" / "pages"
    offenders = [
        p.name
        for p in pages.glob("*.js")
        if p.name != "generic.js" and built_here.search(p.read_text("utf-8"))
    ]
    assert offenders == []
    assert "export async function panel(" in (pages / "generic.js").read_text("utf-8")
