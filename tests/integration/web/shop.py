"""The chart the inspector's tests look at: orders, a saga that can fail, hostile text."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine
from engine import Bindings, Context, Step
from engine.errors import System

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "inspector"
"""Where the browser tests keep their screenshots (git-ignored; each path is printed)."""

HOSTILE = "<img src=x onerror=alert(1)>"
"""What an attacker puts wherever a page shows text."""

CHART_FILE = Path(__file__).with_name("order.yaml")
CHART = engine.load_chart(CHART_FILE)


def _label(ctx: Context) -> Any:
    if ctx.data.get("fail"):
        raise System(f"the printer says {HOSTILE}")
    return None


def _nothing(ctx: Context, payload: Any) -> None:
    pass


BINDINGS = Bindings(
    steps={
        "reserve": Step(lambda ctx: "r", _nothing),
        "pack": Step(lambda ctx: "p", _nothing),
        "label": Step(_label, _nothing),
    }
)


def open_shop(url: str) -> engine.Engine:
    """An engine on ``url`` with the order chart registered."""
    eng = engine.Engine.open(url)
    eng.register(CHART, BINDINGS)
    return eng


WAIT = 60.0
"""How long a test waits for a condition: generous, for a loaded 2-core machine."""


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """``check()``'s first truthy value, asked until ``timeout``; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
