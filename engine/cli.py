"""The ``chartd`` command.

``chartd chart ls|show|check`` work on chart files and on the charts that
installed packages register under the ``chartd.charts`` entry-point group
(the container chart is one). ``chartd serve`` runs the daemon; the client
verbs (``create``, ``start``, ``ps``, ...) live in :mod:`engine.cli_client`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

import engine
from engine import cli_client
from engine.core.chart import holds
from engine.errors import ChartdError, ChartError, InvalidParameter, NotFound, System
from engine.model.analysis import (
    Finding,
    analyse,
    binding_findings,
    condition_names,
    exploration_findings,
    explore,
)
from engine.model.chart import Transition
from engine.runtime.engine import MAX_FOLLOW_UPS

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


BindingsOpt = Annotated[
    str | None,
    typer.Option(
        "--bindings",
        help="module:attribute of the engine.Bindings for the chart, to check its code "
        "(names without code, steps without compensation).",
    ),
]
LimitOpt = Annotated[
    int,
    typer.Option(
        "--max-configurations",
        min=1,
        help="Stop the exhaustive exploration after this many configurations.",
    ),
]


@chart_app.command("check")
def chart_check(
    chart: ChartArg = "container",
    fmt: FormatOpt = "text",
    bindings: BindingsOpt = None,
    max_configurations: LimitOpt = 10_000,
) -> None:
    """Validate a chart and report what analysis finds.

    Static checks: unreachable states, dead ends, (state, event) pairs with
    neither a transition nor a rejection, transitions their conditions do
    not tell apart. With --bindings, guards and steps without code and
    steps without compensation. Then a bounded exploration of every
    reachable configuration, every event and condition value.

    Exit status: 0 clean, 1 errors, 2 warnings only.
    """
    _check_format(fmt)
    findings: list[Finding] = []
    name = chart
    try:
        c = engine.load_chart(_resolve(chart))
    except ChartError as exc:
        findings = [Finding("error", "invalid", p, m) for p, m in exc.problems]
    except ChartdError as exc:
        _fail(exc)
    else:
        name = c.name
        findings = analyse(c.model)
        if bindings is None:
            findings.append(
                Finding(
                    "note",
                    "bindings",
                    "",
                    "guards and steps not checked (no code given): pass --bindings module:attr",
                )
            )
        else:
            findings += _binding_findings(c, bindings)
        findings += _explore(c, max_configurations)
    _report(name, findings, fmt)


def _binding_findings(c: engine.Chart, spec: str) -> list[Finding]:
    """Import ``module:attr`` (from the working directory too) and check it against ``c``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        _fail(InvalidParameter(f"invalid --bindings {spec!r}: use module:attribute"))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a user's module, as gunicorn and uvicorn find theirs
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        _fail(InvalidParameter(f"cannot load --bindings {spec!r}: {exc}"))
    if not isinstance(found, engine.Bindings):
        _fail(
            InvalidParameter(
                f"--bindings {spec!r} is not an engine.Bindings (it is {type(found).__name__})"
            )
        )
    return binding_findings(
        c.model,
        guards=set(found.guards),
        steps=set(found.steps),
        without_undo={n for n, s in found.steps.items() if s.undo is None and s.external},
    )


def _explore(c: engine.Chart, limit: int) -> list[Finding]:
    """Explore ``c`` with :func:`engine.step`: every event, every condition value."""
    names = condition_names(c.model)
    events = sorted(e for e in c.events if not e.startswith("done.state."))
    held: set[str] = set()

    def step(
        snapshot: engine.Snapshot, event: str, values: Mapping[str, bool]
    ) -> tuple[list[engine.Snapshot], list[str], str | None]:
        asked: list[str] = []

        def condition(name: str) -> engine.ConditionFn:
            def value(_: engine.Snapshot, __: Mapping[str, Any]) -> bool:
                asked.append(name)
                return values.get(name, False)

            return value

        successors = _Successors(c, {n: condition(n) for n in names}, held)
        try:
            successors.after(snapshot, event)
        except System as exc:
            return successors.found, asked, exc.message
        return successors.found, asked, None

    initial = c.initial_snapshot(conditions={n: (lambda s, p: False) for n in names})
    found = explore(
        initial,
        events,
        step,
        key=_configuration_key,
        states=lambda s: s.configuration,
        limit=limit,
    )
    found.states |= held
    return exploration_findings(c.model, found, _describe_key, limit=limit)


@dataclass(slots=True)
class _Successors:
    """Where events may leave the entity, gathered in ``found``.

    The states of the configurations held while a saga runs are added to ``held``.
    """

    chart: engine.Chart
    conditions: Mapping[str, engine.ConditionFn]
    held: set[str]
    found: list[engine.Snapshot] = field(default_factory=list)

    def after(self, snapshot: engine.Snapshot, event: str, depth: int = 0) -> None:
        """Where ``event`` may leave the entity: committed, failed, and after any follow-up.

        A refusal adds nothing; System is raised for a chart that never settles,
        and for follow-ups (``then``) that keep firing one another: the engine
        would fire them without end.
        """
        try:
            plan = engine.step(self.chart, snapshot, event, conditions=self.conditions)
        except System:
            raise
        except ChartdError:
            return
        if plan.transient_snapshot is not None:
            self.held.update(plan.transient_snapshot.configuration)
        outcomes = [(plan.snapshot, [t.then for t in plan.transitions if t.then])]
        if plan.steps:
            # A saga can fail at any step: the failure configuration is reachable too.
            failure_then = plan.on_failure.then if plan.on_failure else None
            outcomes.append((plan.failure_snapshot, [failure_then] if failure_then else []))
        for after, follow_ups in outcomes:
            self.found.append(after)
            for then in follow_ups:
                if then is not None and holds(then.when, after, {}, self.conditions):
                    if depth >= MAX_FOLLOW_UPS:
                        raise System(
                            f"follow-ups do not end: the engine stops after {MAX_FOLLOW_UPS} "
                            f"in a row (the last of them: {then.event!r})"
                        )
                    self.after(after, then.event, depth + 1)
                    break


def _configuration_key(s: engine.Snapshot) -> Hashable:
    return (s.configuration, tuple(sorted(s.history.items())))


def _describe_key(key: Hashable) -> str:
    configuration = key[0] if isinstance(key, tuple) else ()
    leaves = [p for p in configuration if not any(o.startswith(p + ".") for o in configuration)]
    return ", ".join(leaves)


def _report(name: str, findings: list[Finding], fmt: str) -> NoReturn:
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    notes = [f for f in findings if f.severity == "note"]
    status = 1 if errors else (2 if warnings else 0)
    if fmt == "json":

        def rows(some: list[Finding]) -> list[dict[str, str]]:
            return [{"kind": f.kind, "where": f.where, "message": f.message} for f in some]

        _out.print_json(
            json.dumps(
                {
                    "chart": name,
                    "status": ["clean", "errors", "warnings"][status],
                    "errors": rows(errors),
                    "warnings": rows(warnings),
                    "notes": rows(notes),
                }
            )
        )
    else:
        for f in errors:
            where = f"{f.where}: " if f.kind == "invalid" and f.where else ""
            label = "" if f.kind == "invalid" else f"[{f.kind}] "
            _out.print(f"error: {label}{where}{f.message}", markup=False)
        for f in warnings:
            _out.print(f"warning: [{f.kind}] {f.message}", markup=False)
        for f in notes:
            _out.print(f"note: {f.message}", markup=False)
        verdict = ["clean", f"{len(errors)} error(s)", f"{len(warnings)} warning(s)"][status]
        _out.print(f"{name}: {verdict}", markup=False)
    raise typer.Exit(status)


# serve is a typer command: one parameter per CLI option, so more than six.
@app.command()
def serve(
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="State directory (default $XDG_STATE_HOME/chartd or ~/.local/state/chartd).",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default sqlite:///STATE_DIR/chartd.db).", show_default=False
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="unix:///path (default STATE_DIR/chartd.sock, mode 0600) or tcp://HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="TLS certificate (tcp://).", show_default=False),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="TLS private key (tcp://).", show_default=False)
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Plain tcp:// without TLS, loopback only.")
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning, error.")
    ] = "info",
    retain_removed: Annotated[
        str,
        typer.Option(
            "--retain-removed",
            help="How long removed containers and their history are kept: "
            "a duration (90m, 24h, 7d) or forever.",
        ),
    ] = "24h",
    otel: Annotated[
        str | None,
        typer.Option(
            "--otel",
            help="Traces and metrics: off, console (to stderr) or otlp "
            "(set by the OTEL_EXPORTER_OTLP_* variables; needs opentelemetry-exporter-otlp). "
            "Default: OTEL_TRACES_EXPORTER (none, console, otlp), else off.",
        ),
    ] = None,
) -> None:
    """Run the daemon: the engine, the container chart on real processes, the gRPC API."""
    from engine import daemon  # noqa: PLC0415 - the daemon's imports stay out of the client verbs
    from engine.api import default_state_dir  # noqa: PLC0415

    _start_logging(log_level)
    exporter = _otel_exporter(otel)
    try:
        config = daemon.DaemonConfig.resolve(
            state_dir or default_state_dir(),
            db=db,
            listen=listen,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure=insecure,
            otel=exporter,
            retain_removed=retain_removed,
        )
        daemon.serve(config)
    except ChartdError as exc:
        _fail(exc)


def _start_logging(log_level: str) -> None:
    """Logs to stderr from ``log_level`` on (a level's name, any case)."""
    import logging  # noqa: PLC0415 - the daemon's imports stay out of the client verbs

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        _fail(engine.errors.InvalidParameter(f"invalid --log-level {log_level!r}"))
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _otel_exporter(otel: str | None) -> str:
    """``--otel`` as given, else as ``OTEL_TRACES_EXPORTER`` says (``none`` is ``off``)."""
    if otel is not None:
        return otel
    # The standard variable, as OpenTelemetry's own auto-configuration reads it.
    named = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "none"
    if named not in ("none", "console", "otlp"):
        _fail(
            engine.errors.InvalidParameter(
                f"invalid OTEL_TRACES_EXPORTER {named!r}: use none, console or otlp"
            )
        )
    return "off" if named == "none" else named


cli_client.register(app, chart_app, _load)


def main() -> None:
    """Entry point of the ``chartd`` console script."""
    try:
        app()
    except ChartdError as exc:  # pragma: no cover - commands catch their own
        _err.print(f"Error: {exc.message}", markup=False)
        sys.exit(1)
