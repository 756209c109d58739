"""``chartd chart export --format html``: one file that opens offline, the same renderer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request
from shop import CHART_FILE, HOSTILE, WAIT, open_shop

from engine.errors import System

CHARTD = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'chartd'; from engine.cli import main; main()",
]


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHARTD, "chart", "export", str(CHART_FILE), "--format", "html", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.fixture
def exported(tmp_path: Path, db_url: str, graphviz: str) -> Path:
    """An entity with a failed saga in its history, exported to a file."""
    eng = open_shop(db_url)
    try:
        e = eng.create("order", "o-77", {"fail": True, "note": HOSTILE})
        eng.fire(e, "pay")
        with pytest.raises(System):
            eng.fire(e, "ship")
    finally:
        eng.close()
    out = tmp_path / "o-77.html"
    done = _export("--entity", "o-77", "--db", db_url, "-o", str(out))
    assert (done.returncode, done.stderr) == (0, "")
    return out


def test_the_export_is_one_file_with_nothing_to_fetch(exported: Path) -> None:
    text = exported.read_text()
    assert not re.search(r'(src|href)="(?!#)', text)  # no asset, no link to follow
    assert "default-src 'none'" in text  # and a policy that would refuse one
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert '<ol class="compensations">' in text


def test_the_export_opens_offline_with_the_entity_lit(exported: Path, page: Page) -> None:
    asked: list[str] = []

    def record(request: Request) -> None:
        asked.append(request.url)

    page.on("request", record)
    page.goto(exported.as_uri())
    page.wait_for_selector('svg.diagram [data-state="paid"].active')
    names = page.locator("ol.compensations .name").all_text_contents()
    assert names == ["pack", "reserve"]
    assert asked == [exported.as_uri()]
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_the_export_of_a_chart_alone_needs_no_database(tmp_path: Path, graphviz: str) -> None:
    done = _export()
    assert done.returncode == 0 and done.stderr == ""
    assert 'data-state="shipped"' in done.stdout and "<ol" not in done.stdout


def test_the_export_says_what_is_wrong(tmp_path: Path, db_url: str) -> None:
    open_shop(db_url).close()
    done = _export("--entity", "nobody", "--db", db_url)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "Error: no entity 'nobody' of chart 'order' in the database\n"
    wrong = subprocess.run(
        [*CHARTD, "chart", "export", str(CHART_FILE), "--format", "svg", "--entity", "x"],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert (wrong.returncode, wrong.stderr) == (2, "Error: --entity goes with --format html\n")
