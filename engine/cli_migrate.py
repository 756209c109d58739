"""``chartd chart migrate CHART --to N``: live entities moved to another version of their chart.

It opens the database itself (``--db``, default the state directory's), so
it needs no daemon and no code of the chart: moving entities runs no step.
A daemon migrates its containers itself when it starts with a newer
container chart; this verb is for other charts, for a plan before an
upgrade (``--dry-run``), and for entities a daemon left waiting on a saga.
It may run beside a daemon on the same database: each move is committed on
the entity's version, as a replica's fire is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import engine
from engine._loading import installed_charts
from engine.cli_output import fail
from engine.errors import ChartdError

__all__ = ["migrate"]


def _target(chart: str) -> tuple[str, engine.Chart | None]:
    """The chart's name, and the chart if ``chart`` is a file or an installed chart."""
    if Path(chart).exists() or chart in installed_charts():
        try:
            loaded = engine.load_chart(chart)
        except ChartdError as exc:
            fail(exc.message)
        return loaded.name, loaded
    return chart, None


def migrate(args: argparse.Namespace) -> None:
    """Print the plan (``--dry-run``) or move the entities, with progress on stderr."""
    from engine.api import default_state_dir  # noqa: PLC0415 - only this verb needs it

    url = args.db or f"sqlite:///{(args.state_dir or default_state_dir()) / 'chartd.db'}"
    name, chart = _target(args.chart)
    if chart is not None and args.to is not None and args.to != chart.version:
        fail(f"--to {args.to} is not the version of {args.chart} ({chart.version})")
    target: str | engine.Chart = chart if chart is not None else name
    try:
        with engine.Engine.open(url, timers=False) as eng:
            plan = eng.migration_plan(target, args.to)
            for line in plan.lines():
                print(line)
            if plan.illegal or plan.problems:
                fail(f"cannot migrate {name} to version {plan.version}: see the plan above")
            if args.dry_run:
                print(f"{plan.entities} entities would move to version {plan.version}")
                return

            def progress(moved: int, total: int) -> None:
                print(f"migrated {moved}/{total}", file=sys.stderr, flush=True)

            report = eng.migrate(target, args.to, batch=args.batch, progress=progress)
    except ChartdError as exc:
        fail(exc.message)
    print(f"{report.moved} entities moved to version {plan.version}")
    if report.waiting:
        fail(
            f"{len(report.waiting)} entities still run a saga and did not move: "
            f"{', '.join(report.waiting[:10])}; run the migration again once they are done"
        )
