"""A chart as SVG: its Graphviz DOT form rendered by Graphviz's ``dot`` program."""

from __future__ import annotations

import shutil
import subprocess

from engine.core import Chart
from engine.errors import System, error_for
from engine.export.dot import to_dot

__all__ = ["render_svg", "to_svg"]

_TIMEOUT = 60.0


def render_svg(dot_source: str, *, program: str = "dot") -> str:
    """``dot_source`` rendered by ``program -Tsvg``.

    NotImplemented names the program when it is not installed (the SVG
    export needs Graphviz); System carries Graphviz's own message when it
    fails on the input.
    """
    found = shutil.which(program)
    if found is None:
        # engine.errors.NotImplemented, by category: its name shadows the builtin.
        raise error_for(
            "not_implemented",
            f"the SVG export needs Graphviz's {program!r} program, which is not on PATH: "
            "install Graphviz (e.g. `apt-get install graphviz`), or export --format dot",
        )
    try:
        done = subprocess.run(
            [found, "-Tsvg"],
            input=dot_source,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise System(f"{program} -Tsvg did not finish within {_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        detail = done.stderr.strip()
        raise System(f"{program} -Tsvg failed (exit {done.returncode}): {detail}")
    return done.stdout


def to_svg(chart: Chart) -> str:
    """The chart's DOT form (:func:`engine.export.to_dot`) as an SVG image."""
    return render_svg(to_dot(chart))
