"""What ``chartd chart ls|show|check|export`` do: the chart verbs behind :mod:`engine.cli`.

They read chart files and installed charts (:func:`engine.load_chart` takes
either), with no daemon. This module loads the model, the analysis and rich:
:mod:`engine.cli` imports it only when a chart verb runs, so that the client
verbs start without any of it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.tree import Tree

import engine
from engine._loading import installed_charts
from engine.cli_output import Table, check_format, fail
from engine.core.chart import holds
from engine.errors import ChartdError, ChartError, InvalidParameter, System
from engine.export import FORMATS, describe
from engine.model.analysis import (
    Exploration,
    Finding,
    analyse,
    binding_findings,
    condition_names,
    exploration_findings,
    explore,
    rejection_field_findings,
)
from engine.model.chart import Transition
from engine.model.diff import diff as chart_diff
from engine.model.migration import Illegal, declared, migrate, source_problems
from engine.runtime.engine import MAX_FOLLOW_UPS

__all__ = ["check", "diff", "export", "ls", "show"]

_out = Console(highlight=False, soft_wrap=True)


def _fail(error: ChartdError) -> NoReturn:
    fail(error.message)


def load(chart: str) -> engine.Chart:
    """The chart a file or an installed chart's name names; exit 1 with the error."""
    try:
        return engine.load_chart(chart)
    except ChartdError as exc:
        _fail(exc)


def ls(args: argparse.Namespace) -> None:
    """``chart ls``: the installed charts, a table or JSON."""
    fmt: str = args.fmt
    check_format(fmt, ("text", "json"))
    rows: list[dict[str, Any]] = []
    for name, path in sorted(installed_charts().items()):
        try:
            c = engine.load_chart(path)
            rows.append({"name": name, "chart": c.name, "version": c.version, "path": str(path)})
        except ChartdError as exc:
            rows.append({"name": name, "error": exc.message, "path": str(path)})
    if fmt == "json":
        _out.print_json(json.dumps(rows))
        return
    table = Table("NAME", "VERSION", "PATH")
    for row in rows:
        table.add_row(row["name"], str(row.get("version", "invalid")), row["path"])
    table.print()


def show(args: argparse.Namespace) -> None:
    """``chart show``: states as a tree, transitions and rejections; or JSON."""
    check_format(args.fmt, ("text", "json"))
    c = load(args.chart)
    if args.fmt == "json":
        _out.print_json(json.dumps(describe(c.model)))
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


def check(args: argparse.Namespace) -> NoReturn:
    """``chart check``: every problem of the chart, then what analysis finds; exits 0, 1 or 2."""
    chart: str = args.chart
    check_format(args.fmt, ("text", "json"))
    findings: list[Finding] = []
    name = chart
    try:
        c = engine.load_chart(chart)
    except ChartError as exc:
        findings = [Finding("error", "invalid", p, m) for p, m in exc.problems]
    except ChartdError as exc:
        _fail(exc)
    else:
        name = c.name
        findings = analyse(c.model) + rejection_field_findings(c.model)
        if args.bindings is None:
            findings.append(
                Finding(
                    "note",
                    "bindings",
                    "",
                    "guards and steps not checked (no code given): pass --bindings module:attr",
                )
            )
        else:
            findings += _binding_findings(c, args.bindings)
        findings += _explore(c, args.max_configurations)
        if args.migrates_from is not None:
            findings += _migration_findings(load(args.migrates_from), c, args.max_configurations)
    _report(name, findings, args.fmt)


def diff(args: argparse.Namespace) -> None:
    """``chart diff OLD NEW``: states, transitions, rejections and steps added, removed, changed."""
    check_format(args.fmt, ("text", "json"))
    old, new = load(args.old), load(args.new)
    changes = chart_diff(old.model, new.model)
    if args.fmt == "json":
        rows = [{"what": c.what, "how": c.how, "name": c.name, "detail": c.detail} for c in changes]
        _out.print_json(json.dumps(rows))
        return
    _out.print(f"{old.name} v{old.version} -> {new.name} v{new.version}", markup=False)
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for c in changes:
        detail = f": {c.detail}" if c.detail else ""
        _out.print(f"{marks[c.how]} {c.what} {c.name}{detail}", markup=False)
    if not changes:
        _out.print("no states, transitions, rejections or steps changed", markup=False)


def _migration_findings(old: engine.Chart, new: engine.Chart, limit: int) -> list[Finding]:
    """Errors for each configuration ``old`` can reach that maps to no legal one of ``new``."""
    where = f"migrations.{old.version}"
    if old.name != new.name or old.version >= new.version:
        return [
            Finding(
                "error",
                "migration",
                where,
                f"{new.name} v{new.version} cannot migrate from {old.name} v{old.version}: "
                "a migration goes to a newer version of the same chart",
            )
        ]
    migration = declared(new.model, old.version)
    out = [Finding("error", "migration", where, p) for p in source_problems(old.model, migration)]
    found = _exploration(old, limit)
    illegal = 0
    for key in found.configurations:
        configuration, history = key if isinstance(key, tuple) else ((), ())
        try:
            migrate(new.model, migration, configuration, {}, dict(history))
        except Illegal as exc:
            illegal += 1
            out.append(
                Finding(
                    "error",
                    "migration",
                    _describe_key(key),
                    f"v{old.version} configuration {_describe_key(key)} maps to no legal "
                    f"configuration of v{new.version}: {exc}",
                )
            )
    if not illegal:
        scope = "every" if found.complete else f"each of the first {limit}"
        out.append(
            Finding(
                "note",
                "migration",
                "",
                f"{scope} configuration of v{old.version} ({len(found.configurations)}) "
                f"maps to a legal configuration of v{new.version}",
            )
        )
    return out


def export(
    chart: str, fmt: str, output: Path | None, *, entity: str | None = None, db: str | None = None
) -> None:
    """``chart export``: the chart in one of :data:`engine.export.FORMATS` or ``html``.

    ``html`` is the inspector's page as one file: ``entity``'s (read from
    ``db``, by default the daemon's database) or the chart's diagram alone.
    """
    check_format(fmt, (*FORMATS, "html"))
    try:
        loaded = engine.load_chart(chart)
        text = _html(loaded, entity, db) if fmt == "html" else FORMATS[fmt](loaded)
    except ChartdError as exc:  # a chart that does not load; svg without Graphviz
        _fail(exc)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _html(chart: engine.Chart, entity: str | None, db: str | None) -> str:
    from engine.api import default_state_dir  # noqa: PLC0415 - only for this format
    from engine.web.export import standalone  # noqa: PLC0415

    if entity is not None and db is None:
        db = f"sqlite:///{default_state_dir() / 'chartd.db'}"
    return standalone(chart, db=db, entity=entity)


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
    found = _exploration(c, limit)
    return exploration_findings(c.model, found, _describe_key, limit=limit)


def _exploration(c: engine.Chart, limit: int) -> Exploration[engine.Snapshot]:
    """The configurations (with history) ``c`` can reach, and the states held by sagas."""
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
    return found


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
    raise SystemExit(status)
