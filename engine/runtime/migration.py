"""Migrating live entities to another version of their chart (``Engine.migrate``).

The plan comes first: every live entity not on the target version is mapped
with the migration the target declares from its version
(:mod:`engine.model.migration`), and if one of them would land in no legal
configuration nothing moves. Then entities move in batches, each entity's move
one journaled transition (event ``chart.migrate``), committed on the entity's
version like a fire, under its lock. So a crash between batches leaves every
entity on one version or the other, a second run moves only what the first
did not, and an engine firing meanwhile is never overtaken. An entity with a
saga in flight waits until the saga ends, under the version it started on.
The charts come from the store's documents: migrating needs no code.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import InvalidParameter, NotFound
from engine.model.chart import ChartModel
from engine.model.migration import Illegal, Migration, declared, leaves, migrate, source_problems
from engine.model.validate import build
from engine.ports import EntityRow, TimerRow, TransitionRow, VersionConflict, Write
from engine.runtime.entities import chunks
from engine.runtime.shared import Shared

__all__ = ["MIGRATE_EVENT", "MigrationPlan", "MigrationReport", "Migrator"]

MIGRATE_EVENT = "chart.migrate"
"""The event of the journal entry each entity's move writes."""

_PAGE = 1000

Progress = Callable[[int, int], None]
"""Told (entities moved so far, entities to move) after each batch."""


@dataclass(slots=True)
class MigrationPlan:
    """What a migration of ``chart`` to ``version`` moves, before anything moves.

    ``moves`` counts entities per (source version, source states, target
    states), states being the innermost active ones, comma-separated;
    ``illegal`` says, per source configuration, why it has no legal target.
    """

    chart: str
    version: int
    moves: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    illegal: dict[tuple[int, str], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    in_flight: Counter[tuple[int, str]] = field(default_factory=Counter)
    """Entities held by a saga, per source configuration: they move once it ends."""

    @property
    def entities(self) -> int:
        """How many entities the plan moves (those in flight included)."""
        return sum(self.moves.values()) + sum(self.in_flight.values())

    def lines(self) -> list[str]:
        """The plan as text, one line per source configuration."""
        out = [
            f"v{v} {src} -> v{self.version} {dst}: {n}"
            for (v, src, dst), n in sorted(self.moves.items())
        ]
        out += [
            f"v{v} {src}: {n} in flight (moves once its saga ends)"
            for (v, src), n in sorted(self.in_flight.items())
        ]
        out += [f"v{v} {src}: cannot migrate: {why}" for (v, src), why in self.illegal.items()]
        return out + self.problems


@dataclass(slots=True)
class MigrationReport:
    """What :meth:`engine.Engine.migrate` did: its plan, how many moved, who still waits."""

    plan: MigrationPlan
    moved: int = 0
    waiting: list[str] = field(default_factory=list)
    """Names of entities whose saga was still in flight when the migration stopped waiting."""


def _states(configuration: tuple[str, ...]) -> str:
    return ",".join(leaves(configuration))


class Migrator:
    """Plans and runs migrations for one engine."""

    def __init__(self, shared: Shared) -> None:
        self._s = shared

    # -- the plan --------------------------------------------------------------------------

    def models(self, chart: str) -> dict[int, ChartModel]:
        """Every stored version of ``chart``, built from its document."""
        stored = self._s.store.chart_versions(chart)
        if not stored:
            raise NotFound(f"chart {chart!r} has no stored version: register it first")
        return {v.version: build(v.document, source=f"{chart} v{v.version}") for v in stored}

    def plan(self, chart: str, version: int | None) -> tuple[MigrationPlan, _Mapper]:
        """The plan of moving every live entity of ``chart`` to ``version`` (None: the newest)."""
        self._s.check_open()
        models = self.models(chart)
        to = max(models) if version is None else version
        if to not in models:
            known = ", ".join(str(v) for v in sorted(models))
            raise NotFound(f"chart {chart!r} has no version {to} (stored: {known})")
        mapper = _Mapper(models, to)
        plan = MigrationPlan(chart, to)
        busy = {tr.entity_id for tr in self._s.store.unfinished()}
        for row in self._candidates(chart, to):
            source = mapper.source(row)
            problems = mapper.problems(source)
            if problems:
                plan.problems.extend(p for p in problems if p not in plan.problems)
                continue
            src = _states(row.configuration)
            if row.id in busy or mapper.transient(row):
                plan.in_flight[source, src] += 1
                continue
            try:
                moved = mapper.move(row)
            except Illegal as exc:
                plan.illegal.setdefault((source, src), str(exc))
                continue
            plan.moves[source, src, _states(moved.configuration)] += 1
        return plan, mapper

    def _candidates(self, chart: str, to: int) -> Iterator[EntityRow]:
        after = 0
        while True:
            rows = self._s.store.entities(chart=chart, after=after, limit=_PAGE, live=True)
            for row in rows:
                if row.chart_version != to:
                    yield row
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq

    # -- the moves -------------------------------------------------------------------------

    def migrate(
        self,
        chart: str,
        version: int | None,
        *,
        batch: int,
        wait: float,
        progress: Progress | None,
    ) -> MigrationReport:
        """See :meth:`engine.Engine.migrate`."""
        if not isinstance(batch, int) or not 1 <= batch <= 10_000:
            raise InvalidParameter(f"batch must be between 1 and 10000, got {batch!r}")
        plan, mapper = self.plan(chart, version)
        if plan.illegal or plan.problems:
            raise InvalidParameter(
                f"cannot migrate chart {chart!r} to version {plan.version}: "
                + "; ".join(plan.lines()[len(plan.moves) + len(plan.in_flight) :])
            )
        report = MigrationReport(plan)
        deadline = time.monotonic() + wait
        pause = threading.Event()
        rows: Iterable[EntityRow] = self._candidates(chart, plan.version)
        while True:
            # Entities in flight, or moved by a fire meanwhile, wait for the next round.
            waiting: list[EntityRow] = []
            for chunk in chunks(rows, batch):
                report.moved += self._move(mapper, chunk, waiting)
                if progress is not None:
                    progress(report.moved, plan.entities)
            report.waiting = [r.name for r in waiting]
            if not waiting or time.monotonic() >= deadline:
                return report
            # Sagas in flight end under their version; then their entities move.
            pause.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            self._s.check_open()
            rows = self._again(waiting, plan.version)

    def adopt(self, model: ChartModel) -> int:
        """Move the live entities of unknown version (made before versions were kept) onto
        ``model``'s version, presumed on version 1; how many moved.

        Those whose snapshot the migration from version 1 changes (default
        entry included) move with a ``chart.migrate`` entry each; the others
        are left for the store to label. InvalidParameter, nothing moved, if
        one would land in no legal configuration.
        """
        mapper = _Mapper({model.version: model}, model.version, presumed=1)
        changed: list[EntityRow] = []
        illegal: dict[str, str] = {}
        for row in self._candidates(model.name, model.version):
            if row.chart_version:
                continue
            try:
                moved = mapper.move(row)
            except Illegal as exc:
                illegal.setdefault(_states(row.configuration), str(exc))
                continue
            if (moved.configuration, dict(moved.data), dict(moved.history)) != (
                row.configuration,
                dict(row.data),
                dict(row.history),
            ):
                changed.append(row)
        if illegal:
            raise InvalidParameter(
                f"entities of chart {model.name!r} made before versions were kept cannot "
                f"move to version {model.version}: "
                + "; ".join(f"{src}: {why}" for src, why in illegal.items())
            )
        waiting: list[EntityRow] = []
        return sum(self._move(mapper, chunk, waiting) for chunk in chunks(changed, 500))

    def _again(self, rows: list[EntityRow], to: int) -> list[EntityRow]:
        """``rows`` as stored now, those still live and not on version ``to``."""
        found = (self._s.store.entity(r.id) for r in rows)
        return [r for r in found if r is not None and r.live and r.chart_version != to]

    def _move(self, mapper: _Mapper, rows: list[EntityRow], waiting: list[EntityRow]) -> int:
        """Move ``rows`` in one shared commit; the others go to ``waiting``; how many moved."""
        s = self._s
        busy = {tr.entity_id for tr in s.store.unfinished()}
        ready: list[EntityRow] = []
        for row in rows:
            held = row.id in busy or row.id in s.recovering or row.id in s.stranded
            (waiting if held or mapper.transient(row) else ready).append(row)
        ids = sorted(r.id for r in ready)
        for entity_id in ids:
            s.locks.acquire(entity_id)
        try:
            writes: list[tuple[EntityRow, Write]] = []
            for row in ready:
                try:
                    writes.append(self._write(mapper, row))
                except Illegal as exc:  # moved since the plan, into what cannot migrate
                    raise InvalidParameter(f"cannot migrate {row.name}: {exc}") from None
            failures = s.commit.commit_many([w for _, w in writes]) if writes else []
        finally:
            for entity_id in reversed(ids):
                s.locks.release(entity_id)
        moved = 0
        for row, (after, _), failure in zip(ready, writes, failures, strict=True):
            if failure is None:
                s.cache[after.id] = after
                moved += 1
                continue
            s.cache.pop(after.id, None)
            if not isinstance(failure, VersionConflict):
                raise failure
            waiting.append(row)  # a fire moved it meanwhile: read again, next round
        return moved

    def _write(self, mapper: _Mapper, row: EntityRow) -> tuple[EntityRow, Write]:
        """The entity's move as one unit: its new row, its journal entry, its timers."""
        s = self._s
        now = s.clock.now()
        source = mapper.source(row)
        moved = mapper.move(row)
        after = replace(
            row,
            configuration=moved.configuration,
            data=dict(moved.data),
            history=dict(moved.history),
            version=row.version + 1,
            updated_at=now,
            chart_version=mapper.to,
        )
        moves = {
            "from_version": source,
            "to_version": mapper.to,
            "from": list(row.configuration),
            "to": list(moved.configuration),
        }
        record = TransitionRow(
            id=s.next_transition_id(),
            entity_id=row.id,
            event=MIGRATE_EVENT,
            params=moves,
            status="committed",
            version_from=row.version,
            version_to=after.version,
            plan={
                "source": {"configuration": list(row.configuration)},
                "committed": list(moved.configuration),
                "steps": [],
                "chart_version": mapper.to,
            },
            owner=s.id,
            started_at=now,
            finished_at=now,
        )
        write = Write(entity=after, expect_version=row.version, transitions=[record])
        migration = mapper.migration(source)
        if migration.timers:
            _move_timers(s, migration, row.id, write)
        return after, write


def _move_timers(s: Shared, migration: Migration, entity_id: str, write: Write) -> None:
    """Rename the pending timers the migration maps; cancel those it maps to null."""
    cancelled: set[str] = set()
    renamed: list[TimerRow] = []
    for timer in s.store.timers(entity_id):
        if timer.status != "pending" or timer.event not in migration.timers:
            continue
        event = migration.timer(timer.event)
        if event is None:
            cancelled.add(timer.event)
        else:
            renamed.append(replace(timer, event=event))
    if cancelled:
        write.cancel_timers = (entity_id, frozenset(cancelled))
    write.timers.extend(renamed)


class _Mapper:
    """The stored versions of one chart and the migrations into the target version."""

    def __init__(self, models: dict[int, ChartModel], to: int, presumed: int | None = None) -> None:
        self.models = models
        self.to = to
        self.target = models[to]
        # The version an entity of unknown version is taken to run on (default: the oldest).
        self.presumed = presumed if presumed is not None else min(models)
        self._migrations: dict[int, Migration] = {}
        self._problems: dict[int, list[str]] = {}

    def source(self, row: EntityRow) -> int:
        """The version the entity runs on (one created before versions: the presumed one)."""
        return row.chart_version or self.presumed

    def migration(self, source: int) -> Migration:
        """The migration the target declares from ``source`` (defaults if none)."""
        found = self._migrations.get(source)
        if found is None:
            found = self._migrations[source] = declared(self.target, source)
        return found

    def problems(self, source: int) -> list[str]:
        """What the migration from ``source`` maps from that ``source`` lacks."""
        found = self._problems.get(source)
        if found is None:
            model = self.models.get(source)
            if model is None:
                found = [f"version {source} of the chart is not stored"]
            else:
                found = source_problems(model, self.migration(source))
            self._problems[source] = found
        return found

    def transient(self, row: EntityRow) -> bool:
        """Whether the entity is held in a transient state (a saga runs)."""
        model = self.models.get(self.source(row))
        return model is not None and any(
            model.states[p].transient for p in row.configuration if p in model.states
        )

    def move(self, row: EntityRow) -> Any:
        """The entity's snapshot fields on the target version; Illegal if there are none."""
        return migrate(
            self.target,
            self.migration(self.source(row)),
            row.configuration,
            row.data,
            row.history,
        )
