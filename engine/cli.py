"""The ``chartd`` command.

``chartd chart ls|show|check`` work on chart files and on the charts that
installed packages register under the ``chartd.charts`` entry-point group
(the container chart is one). The daemon verbs arrive with the daemon.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

import engine
from engine.errors import ChartdError, ChartError, NotFound
from engine.model.analysis import Finding, analyse
from engine.model.chart import Transition

__all__ = ["app", "main"]

app = typer.Typer(
    name="chartd",
    help="An explicit state-machine engine for control planes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
chart_app = typer.Typer(help="Inspect and check charts.", no_args_is_help=True)
app.add_typer(chart_app, name="chart")

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

ChartArg = Annotated[
    str,
    typer.Argument(help="A chart file (YAML or JSON) or the name of an installed chart."),
]
FormatOpt = Annotated[str, typer.Option("--format", help="Output format: text or json.")]


def _installed() -> dict[str, Path]:
    """Charts that installed packages register as ``name = "module:PATH_ATTRIBUTE"``."""
    found: dict[str, Path] = {}
    for ep in entry_points(group="chartd.charts"):
        found[ep.name] = Path(ep.load())
    return found


def _resolve(chart: str) -> Path:
    path = Path(chart)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return path
    installed = _installed()
    if chart in installed:
        return installed[chart]
    names = ", ".join(sorted(installed)) or "none"
    raise NotFound(f"no chart file or installed chart named {chart!r} (installed: {names})")


def _fail(error: ChartdError) -> NoReturn:
    _err.print(f"Error: {error.message}", markup=False)
    raise typer.Exit(1)


def _check_format(fmt: str) -> None:
    if fmt not in ("text", "json"):
        _fail(engine.errors.InvalidParameter(f"invalid --format {fmt!r}: use text or json"))


@chart_app.command("ls")
def chart_ls(fmt: FormatOpt = "text") -> None:
    """List the installed charts."""
    _check_format(fmt)
    rows: list[dict[str, Any]] = []
    for name, path in sorted(_installed().items()):
        try:
            c = engine.load_chart(path)
            rows.append({"name": name, "chart": c.name, "version": c.version, "path": str(path)})
        except ChartdError as exc:
            rows.append({"name": name, "error": exc.message, "path": str(path)})
    if fmt == "json":
        _out.print_json(json.dumps(rows))
        return
    table = Table("NAME", "VERSION", "PATH", box=None)
    for row in rows:
        table.add_row(row["name"], str(row.get("version", "invalid")), row["path"])
    _out.print(table)


def _load(chart: str) -> engine.Chart:
    try:
        return engine.load_chart(_resolve(chart))
    except ChartdError as exc:
        _fail(exc)


def _describe(c: engine.Chart) -> dict[str, Any]:
    model = c.model
    return {
        "chart": c.name,
        "version": c.version,
        "description": model.description,
        "initial": model.initial,
        "states": [
            {
                "path": s.path,
                "kind": s.kind,
                **({"initial": s.initial} if s.initial else {}),
                **({"transient": True} if s.transient else {}),
                **({"history": s.history} if s.history else {}),
            }
            for s in model.states.values()
        ],
        "transitions": [
            {
                "event": t.event,
                "from": t.source,
                "to": t.target,
                **({"via": t.via} if t.via else {}),
                **({"when": str(t.when)} if t.when else {}),
                **({"guards": list(t.guards)} if t.guards else {}),
                **({"steps": list(t.steps)} if t.steps else {}),
            }
            for t in model.transitions
        ],
        "rejections": [
            {
                "event": sorted(r.events) if r.events is not None else "*",
                "in": r.state,
                **({"when": str(r.when)} if r.when else {}),
                "error": r.category.value,
                "message": r.message,
            }
            for r in model.rejections
        ],
    }


@chart_app.command("show")
def chart_show(chart: ChartArg = "container", fmt: FormatOpt = "text") -> None:
    """Show a chart's states, transitions and rejections."""
    _check_format(fmt)
    c = _load(chart)
    if fmt == "json":
        _out.print_json(json.dumps(_describe(c)))
        return
    model = c.model
    _out.print(f"[bold]{c.name}[/bold] v{c.version}")
    if model.description:
        _out.print(model.description.strip(), markup=False)
    tree = Tree("[bold]states[/bold]")
    nodes: dict[str, Tree] = {}
    for s in model.states.values():
        tags: list[str] = [s.kind] if s.kind != "atomic" else []
        if s.transient:
            tags.append("transient")
        if s.path == model.initial:
            tags.append("initial")
        label = s.name + (f" [dim]({', '.join(tags)})[/dim]" if tags else "")
        parent = nodes[s.parent] if s.parent else tree
        nodes[s.path] = parent.add(label)
    _out.print(tree)
    # One line per document entry, so a multi-source transition reads as written.
    _out.print("\n[bold]transitions[/bold]")
    entries: dict[int, list[Transition]] = {}
    for t in model.transitions:
        entries.setdefault(t.index, []).append(t)
    for group in entries.values():
        t = group[0]
        sources = ", ".join(x.source for x in group)
        line = f"  {t.event or '(eventless)'}: {sources} -> {t.target or '(stays)'}"
        line += f"  via {t.via}" if t.via else ""
        line += f"  when {t.when}" if t.when else ""
        _out.print(line, markup=False)
        if t.guards:
            _out.print(f"      guards: {', '.join(t.guards)}", markup=False)
        if t.steps:
            _out.print(f"      steps:  {' -> '.join(t.steps)}", markup=False)
        if t.on_failure and t.on_failure.to:
            _out.print(f"      on failure: -> {t.on_failure.to}", markup=False)
    if model.rejections:
        _out.print("\n[bold]rejections[/bold]")
        for r in model.rejections:
            events = ", ".join(sorted(r.events)) if r.events is not None else "*"
            when = f" when {r.when}" if r.when else ""
            _out.print(
                f"  {events} in {r.state}{when}: {r.category.value}: {r.message}", markup=False
            )


@chart_app.command("check")
def chart_check(chart: ChartArg = "container", fmt: FormatOpt = "text") -> None:
    """Validate a chart and report what analysis finds.

    Exit status: 0 clean, 1 errors (the chart is refused), 2 warnings only.
    """
    _check_format(fmt)
    errors: list[dict[str, str]] = []
    findings: list[Finding] = []
    name = chart
    try:
        c = engine.load_chart(_resolve(chart))
        name = c.name
        findings = analyse(c.model)
    except ChartError as exc:
        errors = [{"path": p, "message": m} for p, m in exc.problems]
    except ChartdError as exc:
        _fail(exc)
    warnings = [f for f in findings if f.severity == "warning"]
    status = 1 if errors else (2 if warnings else 0)
    if fmt == "json":
        _out.print_json(
            json.dumps(
                {
                    "chart": name,
                    "status": ["clean", "errors", "warnings"][status],
                    "errors": errors,
                    "warnings": [
                        {"kind": f.kind, "where": f.where, "message": f.message} for f in warnings
                    ],
                }
            )
        )
    else:
        for e in errors:
            where = f"{e['path']}: " if e["path"] else ""
            _out.print(f"error: {where}{e['message']}", markup=False)
        for f in warnings:
            _out.print(f"warning: [{f.kind}] {f.message}", markup=False)
        verdict = ["clean", f"{len(errors)} error(s)", f"{len(warnings)} warning(s)"][status]
        _out.print(f"{name}: {verdict}", markup=False)
    raise typer.Exit(status)


def main() -> None:
    """Entry point of the ``chartd`` console script."""
    try:
        app()
    except ChartdError as exc:  # pragma: no cover - commands catch their own
        _err.print(f"Error: {exc.message}", markup=False)
        sys.exit(1)
