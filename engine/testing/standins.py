"""Stand-in code for a chart's names, to test a chart before (or without) its real code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import NotFound
from engine.runtime import Bindings, Context, Step, TransitionRecord

if TYPE_CHECKING:
    import engine
    from engine.runtime import Engine

__all__ = ["StandIns", "leaks", "stand_ins"]


def leaks(
    eng: Engine,
    made: Iterable[tuple[str, str, int]],
    journals: Mapping[str, Sequence[TransitionRecord]] | None = None,
) -> list[str]:
    """What steps made and nobody undid, though their transition did not commit.

    ``made`` lists (entity id, transition id, step index) of every step
    whose ``do`` took effect and whose ``undo`` has not run since. Each must
    belong to a committed transition, or to a step whose compensation
    failed and is recorded as ``compensation_failed`` (the operator's to
    clean up). Anything else leaked: a failed saga left it behind.
    ``journals`` (entity id -> its history) saves reading them again.
    """
    out: list[str] = []
    by_id: dict[str, Mapping[str, TransitionRecord]] = {}
    for entity_id, tid, index in sorted(made):
        journal = by_id.get(entity_id)
        if journal is None:
            records = journals.get(entity_id) if journals is not None else None
            if records is None:
                try:
                    records = eng.history(entity_id)
                except NotFound:
                    continue  # an entity of another database (an earlier test run)
            journal = by_id[entity_id] = {r.id: r for r in records}
        record = journal.get(tid)
        if record is not None and record.status == "committed":
            continue
        step = next((s for s in record.steps if s.index == index), None) if record else None
        if step is not None and step.status == "compensation_failed":
            continue
        status = record.status if record is not None else "not in the journal"
        what = f"{record.event!r} ({status})" if record is not None else f"a transition {status}"
        name = step.name if step is not None else f"#{index}"
        out.append(
            f"step {name} of {what} on entity {entity_id[:12]} took effect and was never undone"
        )
    return out


class StandIns:
    """Code for every guard and step a chart names: guards that pass, steps that keep a ledger.

    Each stand-in step "makes" something named after the entity, the
    transition and its place in the saga (``ctx.identity``), as a real step
    would make a directory or a process, and its undo removes it: safe on a
    step that never ran, with or without a payload (the undo contract).
    :meth:`check` is an invariant for :func:`engine.testing.state_machine`:
    nothing a failed saga made is left behind. ``external=False`` makes
    every step internal (no write-ahead, one commit).

    Copy and change ``bindings`` to plant a defect, e.g. an undo that does
    nothing: the state machine then finds the leak and shrinks it.
    """

    def __init__(self, chart: engine.Chart, *, external: bool = True) -> None:
        self.made: dict[str, tuple[str, str, int]] = {}
        guards = sorted({g for t in chart.transitions for g in t.guards})
        steps = sorted({s for t in chart.transitions for s in t.steps})
        self.bindings = Bindings(
            guards=dict.fromkeys(guards, _allow),
            steps={s: Step(self.do, self.undo, external=external) for s in steps},
        )

    @staticmethod
    def name(ctx: Context) -> str:
        """What the current step makes: unique per entity, transition and place in the saga."""
        return ctx.identity(str(ctx.step_index))

    def do(self, ctx: Context) -> dict[str, str]:
        """Make this step's thing; the payload names it."""
        name = self.name(ctx)
        assert ctx.step_index is not None
        self.made[name] = (ctx.entity_id, ctx.transition_id, ctx.step_index)
        ctx.emit("made", name=name)
        return {"made": name}

    def undo(self, ctx: Context, payload: Any) -> None:
        """Remove this step's thing, found by its name (the payload may be None)."""
        self.made.pop(self.name(ctx), None)

    def leaks(self, eng: Engine) -> list[str]:
        """What failed sagas left made: see :func:`leaks`.

        Entries of entities ``eng`` does not know (an earlier run's database)
        are forgotten, so one StandIns can serve many runs.
        """
        known: dict[str, bool] = {}
        for name, (entity_id, _, _) in list(self.made.items()):
            if entity_id not in known:
                try:
                    eng.get(entity_id)
                    known[entity_id] = True
                except NotFound:
                    known[entity_id] = False
            if not known[entity_id]:
                del self.made[name]
        return leaks(eng, self.made.values())

    def check(self, eng: Engine) -> None:
        """Fail (AssertionError) if a failed saga left something made."""
        found = self.leaks(eng)
        assert not found, "leaked: " + "; ".join(found)


def _allow(ctx: Context) -> None:
    """A guard that lets everything through."""


def stand_ins(
    chart: engine.Chart,
    *,
    external: bool = True,
    change: Callable[[StandIns], Bindings] | None = None,
) -> Callable[[], tuple[Bindings, list[Callable[[Engine], None]]]]:
    """For :func:`~engine.testing.state_machine`: fresh :class:`StandIns` each run, checked.

    Each run gets stand-ins of its own (a ledger that starts empty) and
    their leak check as an invariant. ``change`` builds the bindings from
    them, e.g. to replace one step's undo with a broken one.
    """

    def build() -> tuple[Bindings, list[Callable[[Engine], None]]]:
        made = StandIns(chart, external=external)
        return (change(made) if change is not None else made.bindings), [made.check]

    return build
