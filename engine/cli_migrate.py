"""``chartd chart migrate CHART --to N``: live entities moved to another version of their chart.

By default the daemon does it (``Engine.MigrateChart``, at ``-H``/
``CHARTD_HOST``), streaming the plan and the progress back: what a user of
a daemon needs. With ``--db`` or ``--state-dir`` it opens a database itself
instead, with no daemon and no code of the chart (moving entities runs no
step); CHART may then be a chart file, whose version is stored and is the
target. It may run beside a daemon on the same database: each move is
committed on the entity's version, as a replica's fire is. A daemon also
migrates its containers itself when it starts with a newer container chart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

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
    if args.db is None and args.state_dir is None:
        _through_daemon(args)
    else:
        _on_database(args, args.db or f"sqlite:///{args.state_dir / 'chartd.db'}")


def _progress(moved: int, total: int) -> None:
    print(f"migrated {moved}/{total}", file=sys.stderr, flush=True)


def _through_daemon(args: argparse.Namespace) -> None:
    from engine.api.chartd.v1 import engine_pb2  # noqa: PLC0415 - only this path needs it
    from engine.cli_session import Session  # noqa: PLC0415

    if Path(args.chart).exists():
        fail(f"{args.chart} is a file: the daemon migrates to versions it keeps; pass --db")
    request = engine_pb2.MigrateChartRequest(
        chart=args.chart, to_version=args.to or 0, dry_run=args.dry_run, batch=args.batch
    )
    with Session(args) as s:
        try:
            for i, message in enumerate(s.client.engine.MigrateChart(request)):
                if i == 0:  # the plan
                    for line in message.plan:
                        print(line, flush=True)
                    if args.dry_run:
                        print(
                            f"{message.entities} entities would move to version {message.version}"
                        )
                elif message.done:
                    _outcome(args.dry_run, message.version, message.moved, list(message.waiting))
                else:
                    _progress(message.moved, message.entities)
        except grpc.RpcError as exc:
            s.report(exc)
        s.done()


def _outcome(dry_run: bool, version: int, moved: int, waiting: list[str]) -> None:
    if dry_run:
        return
    print(f"{moved} entities moved to version {version}")
    if waiting:
        fail(
            f"{len(waiting)} entities still run a saga and did not move: "
            f"{', '.join(waiting[:10])}; run the migration again once they are done"
        )


def _on_database(args: argparse.Namespace, url: str) -> None:
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
            report = eng.migrate(target, args.to, batch=args.batch, progress=_progress)
    except ChartdError as exc:
        fail(exc.message)
    _outcome(False, plan.version, report.moved, report.waiting)
