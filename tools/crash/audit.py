"""The oracle: after a crash and recovery, the journal, outbox and resources of an entity checked.

An :class:`Audit` counts what is *leaked* (resources the entity's committed
state does not own), *lost* (an acknowledged fire, an owned resource or a
version the journal does not hold) and *duplicated* (a key, a version, an
event or a process there twice), and says why in its problems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import engine
from engine.errors import ChartdError, NotFound
from engine.ports import EventRow, TransitionRow
from engine.runtime import Engine as RuntimeEngine
from tools.crash.crashbox import INJECTED, INTERRUPTED, START_STEPS, SUFFIX, TERMINAL
from tools.crash.processes import describe, read_pid
from tools.crash.resources import Resources


@dataclass(slots=True)
class Audit:
    """What one look at an entity found."""

    leaked: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)

    def merge(self, other: Audit, stage: str) -> None:
        """Keep the worst of each count (a leak seen twice is one leak) and every problem."""
        self.leaked = max(self.leaked, other.leaked)
        self.lost = max(self.lost, other.lost)
        self.duplicated = max(self.duplicated, other.duplicated)
        seen = {p.partition(": ")[2] for p in self.problems}
        self.problems += [f"{stage}: {p}" for p in other.problems if p not in seen]


def classify(tr: TransitionRow | None) -> str:
    """What a fire's transition says happened."""
    if tr is None:
        return "absent"
    recovered = "recovered_by" in tr.plan
    if tr.status == "committed":
        return "completed" if recovered else "committed"
    if tr.status == "failed":
        if recovered and INTERRUPTED in (tr.error_message or ""):
            return "interrupted"
        if recovered and INJECTED in (tr.error_message or ""):
            return "resumed"
        return "failed (recovered, without the interruption message)" if recovered else "failed"
    return tr.status


def _story(tr: TransitionRow) -> list[str]:
    """Check that the journal of one finished transition tells a coherent story."""
    kind = classify(tr)
    statuses = {s.index: s.status for s in tr.steps}
    names = list(tr.plan["steps"])
    problems = []
    if len(statuses) != len(names):
        problems.append(f"{tr.event} {tr.id[:8]}: {len(statuses)} step rows for {len(names)} steps")
    if kind in ("committed", "completed"):
        bad = {names[i]: s for i, s in statuses.items() if s != "done"}
        if bad:
            problems.append(f"{tr.event} {tr.id[:8]} {kind} but steps {bad}")
    elif kind == "interrupted":
        bad = {names[i]: s for i, s in statuses.items() if s not in ("compensated", "failed")}
        if bad:
            problems.append(f"{tr.event} {tr.id[:8]} interrupted but steps {bad} not undone")
        if tr.error_category != "unavailable":
            problems.append(f"{tr.event} {tr.id[:8]} interrupted with category {tr.error_category}")
    elif kind == "resumed":
        bad = {names[i]: s for i, s in statuses.items() if s not in ("compensated", "failed")}
        if bad:
            problems.append(f"{tr.event} {tr.id[:8]} resumed but steps {bad} not undone")
        if tr.error_category == "unavailable":
            problems.append(f"{tr.event} {tr.id[:8]} resumed but lost its error's category")
    elif kind == "failed":
        failing = tr.params.get("fail_at")
        if INJECTED not in (tr.error_message or ""):
            problems.append(f"{tr.event} {tr.id[:8]} failed with {tr.error_message!r}")
        at = names.index(failing) if failing in names else len(names)
        for i, s in statuses.items():
            want = "compensated" if i < at else "failed" if i == at else "pending"
            if s != want:
                problems.append(f"{tr.event} {tr.id[:8]}: step {names[i]} is {s}, not {want}")
    else:
        problems.append(f"{tr.event} {tr.id[:8]} ended as {kind}: {tr.error_message}")
    return problems


def _check_journal(rows: Sequence[TransitionRow], found: Audit) -> None:
    """Every transition finished, its journal coherent, and each idempotency key journaled once."""
    for tr in rows:
        if tr.status not in TERMINAL:
            found.problems.append(f"{tr.event} {tr.id[:8]} left {tr.status} after recovery")
        else:
            found.problems += _story(tr)
    for key, n in Counter(tr.idempotency_key for tr in rows if tr.idempotency_key).items():
        if n > 1:
            found.duplicated += n - 1
            found.problems.append(f"key {key} journaled {n} times")


def _check_versions(ent: engine.Entity, rows: Sequence[TransitionRow], found: Audit) -> None:
    """The version chain: each transition starts where the last ended; the entity is at the end."""
    version = 0
    for tr in rows:
        if tr.version_to is None:
            continue
        if tr.version_from < version:
            found.duplicated += 1
            found.problems.append(
                f"{tr.event} {tr.id[:8]} applied from version {tr.version_from}, "
                f"already moved to {version}"
            )
        elif tr.version_from > version:
            found.lost += 1
            found.problems.append(
                f"versions {version}..{tr.version_from} have no transition in the journal"
            )
        span = tr.version_to - tr.version_from
        if span < 2 or (span > 2 and "recovered_by" not in tr.plan):
            # Every crashbox step is external: one version for the write-ahead, one
            # for the end (recovery may add its own, to claim the transition).
            if span > 2:
                found.duplicated += span - 2
            else:
                found.lost += 2 - span
            found.problems.append(
                f"{tr.event} {tr.id[:8]} spans versions {tr.version_from}..{tr.version_to}"
            )
        version = tr.version_to
    if ent.version != version:
        found.lost += 1
        found.problems.append(f"{ent.name} is at version {ent.version}, the journal at {version}")


def _check_acks(
    rows: Sequence[TransitionRow], acks: Sequence[Mapping[str, Any]], found: Audit
) -> None:
    """What the client was told is what the journal holds."""
    by_id = {tr.id: tr for tr in rows}
    for ack in acks:
        if ack["kind"] != "ack":
            continue
        told = by_id.get(ack["tid"] or "")
        if ack["outcome"] == "committed" and (told is None or told.status != "committed"):
            found.lost += 1
            found.problems.append(f"acknowledged commit {ack['key']} is not committed")
        if ack["outcome"] == "failed" and (told is None or told.status == "committed"):
            found.lost += 1
            found.problems.append(f"acknowledged failure {ack['key']} is not failed")


def _owned(ent: engine.Entity, rows: Sequence[TransitionRow], found: Audit) -> dict[str, str]:
    """What the entity's committed state owns (identity -> start step); its data must agree."""
    name = ent.name
    committed = [tr for tr in rows if tr.status == "committed"]
    last = committed[-1] if committed else None
    owned: dict[str, str] = {}
    if ent.configuration == ("running",):
        if last is None or last.event != "start":
            found.problems.append(f"{name} is running but its last commit is not a start")
        else:
            owned = {f"{ent.id[:12]}-{last.id[:12]}-{s}": s for s in START_STEPS}
            for identity, step in owned.items():
                if ent.data.get(f"res_{step}") != identity:
                    found.lost += 1
                    found.problems.append(
                        f"{name}'s data names {ent.data.get(f'res_{step}')} for {step}"
                    )
    elif ent.configuration == ("idle",):
        if last is not None and last.event != "stop":
            found.problems.append(f"{name} is idle but its last commit is a {last.event}")
        left = sorted(k for k in ent.data if k.startswith("res_"))
        if left:
            found.problems.append(f"{name} is idle but its data names {left}")
    else:
        found.problems.append(f"{name} left in {ent.state} after recovery")
    return owned


class Verifier:
    """Looks at the database and the resource root after a crash."""

    def __init__(self, eng: RuntimeEngine, resources: Resources, chart: str) -> None:
        self.eng = eng
        self.resources = resources
        self.chart = chart
        self.problems: list[str] = []

    def events(self) -> list[EventRow]:
        """The whole outbox."""
        out: list[EventRow] = []
        while True:
            page = self.eng.store.events(after=out[-1].seq if out else 0, limit=1000)
            out += page
            if len(page) < 1000:
                return out

    def rows(self, entity_id: str) -> list[TransitionRow]:
        """The entity's journal, with plans (the public records leave ``recovered_by`` out)."""
        return self.eng.store.transitions(entity_id)

    def audit(self, name: str, acks: Sequence[Mapping[str, Any]]) -> Audit:
        """Check the journal of entity ``name`` against the acks and against the world."""
        found = Audit()
        try:
            ent = self.eng.get(name, self.chart)
        except NotFound:
            if any(a["kind"] == "ack" for a in acks):
                found.lost += 1
                found.problems.append(f"{name} is gone but fires on it were acknowledged")
            return found
        rows = self.rows(ent.id)
        _check_journal(rows, found)
        _check_versions(ent, rows, found)
        self._check_outbox(ent, rows, found)
        _check_acks(rows, acks, found)
        self._check_world(ent, _owned(ent, rows, found), found)
        return found

    def _check_outbox(
        self, ent: engine.Entity, rows: Sequence[TransitionRow], found: Audit
    ) -> None:
        """One outbox event per finished transition, saying how it ended."""
        said = Counter(
            (ev.transition_id, ev.type) for ev in self.events() if ev.entity_id == ent.id
        )
        for tr in rows:
            if tr.status not in TERMINAL:
                continue
            want = "transition" if tr.status == "committed" else "transition.failed"
            wrong = "transition.failed" if want == "transition" else "transition"
            n = said[(tr.id, want)]
            if n != 1:
                if n > 1:
                    found.duplicated += n - 1
                else:
                    found.lost += 1
                found.problems.append(f"{tr.event} {tr.id[:8]} {tr.status}: {n} {want} events")
            if said[(tr.id, wrong)]:
                found.problems.append(f"{tr.event} {tr.id[:8]} {tr.status} has a {wrong} event")

    def _check_world(self, ent: engine.Entity, owned: Mapping[str, str], found: Audit) -> None:
        """Each resource the entity owns exists, once; nothing else of the entity does."""
        name = ent.name
        world = self.resources.world(ent.id[:12])
        for identity, step in owned.items():
            have = world.pop(identity, {})
            path = self.resources.path(step, identity)
            if step == "make_dir":
                ok = path.is_dir()
            elif step == "spawn":
                procs = have.get("proc", [])
                ok = bool(procs) and read_pid(path) in procs
                if len(procs) > 1:
                    found.duplicated += len(procs) - 1
                    found.problems.append(f"{len(procs)} processes for {identity}")
            else:
                ok = path.is_file() and path.read_text() == f"{identity}\n"
            if not ok:
                found.lost += 1
                found.problems.append(f"{name} owns {step} {identity} but it is missing")
            extra = [k for k in have if k not in ("proc", SUFFIX[step])]
            if extra:
                found.leaked += len(extra)
                found.problems.append(f"stray {extra} beside {identity}")
        for identity, have in world.items():
            count = sum(len(v) for v in have.values())
            found.leaked += count
            who = "".join(f", process {describe(pid)}" for pid in have.get("proc", []))
            found.problems.append(
                f"leaked {sorted(have)} of {identity} ({name} does not own it{who})"
            )

    def fire_outcome(self, name: str, key: str) -> TransitionRow | None:
        """The transition journaled for ``key`` on entity ``name``."""
        ent = self.eng.get(name, self.chart)
        return self.eng.store.transition(ent.id, key)

    def retry(self, name: str, intent: Mapping[str, Any]) -> Audit:
        """Fire ``intent`` again with its key, as a client that never heard back."""
        found = Audit()
        ent = self.eng.get(name, self.chart)
        before = self.rows(ent.id)
        recorded = self.eng.store.transition(ent.id, intent["key"])
        result: engine.Result | None = None
        try:
            result = self.eng.fire(
                ent.id, intent["event"], intent["params"], idempotency_key=intent["key"]
            )
        except ChartdError as exc:
            if recorded is not None and recorded.status == "committed":
                found.problems.append(f"retry of committed {intent['key']} raised {exc.message}")
        after = self.rows(ent.id)
        if recorded is not None:
            if len(after) != len(before):
                found.duplicated += len(after) - len(before)
                found.problems.append(f"retry of {intent['key']} ran again")
            if result is not None and (not result.replayed or result.transition_id != recorded.id):
                found.duplicated += 1
                found.problems.append(f"retry of {intent['key']} was not a replay")
        elif len(after) != len(before) + 1:
            found.problems.append(f"retry of unjournaled {intent['key']} did not run once")
        return found

    def cycle(self, name: str, tag: str) -> Audit:
        """Bring the entity to idle (start and stop it if idle): recovery left it usable."""
        found = Audit()
        try:
            state = self.eng.get(name, self.chart).state
            events = ["stop"] if state == "running" else ["start", "stop"]
            for n, event in enumerate(events):
                self.eng.fire(name, event, idempotency_key=f"{tag}-cycle-{n}")
        except ChartdError as exc:
            found.problems.append(f"{name} cannot cycle after recovery: {exc.message}")
        return found
