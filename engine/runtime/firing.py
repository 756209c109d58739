"""Firing: one event on one entity, under its lock, decided, retried, and followed up.

A fire takes the entity's lock, decides on the cached row (a plan or a
rejection), runs the guards, and hands the plan to the saga runner. A cached
row older than the stored one is found out by the version check of the
commit: the fire decides again on the fresh row, a bounded number of times.
A declared follow-up (``then``) fires once the first fire has let go of the
lock, and a chain of them runs in a loop on the first fire's thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine import core
from engine.errors import ChartdError, Conflict, InvalidParameter, Unavailable, error_for
from engine.ports import EntityRow, SpanRef, TransitionRow
from engine.runtime.bindings import Context
from engine.runtime.journal import Cause, Origin, as_error, json_value
from engine.runtime.limits import MAX_FOLLOW_UPS
from engine.runtime.outcomes import Contended, Renamed, SagaFailed, Stale
from engine.runtime.records import Entity, Result
from engine.runtime.saga import Fire, Saga
from engine.runtime.shared import Shared

__all__ = ["UNKNOWN_EVENT", "Firing"]

UNKNOWN_EVENT = "(unknown)"
"""The event the observer hears for a fire of an event its chart does not have."""

log = logging.getLogger("chartd.engine")

_SPANS_KEPT = 1024  # spans of committed transitions kept for the links of later fires

_FollowUp = tuple[str, str, Cause]  # (entity id, event, the transition that declared it)


class Firing:
    """Fires events for one engine."""

    def __init__(self, shared: Shared, saga: Saga) -> None:
        self._s = shared
        self._saga = saga
        self._chain = threading.local()  # .pending: the follow-ups this thread has yet to fire
        # The spans of the transitions this engine committed last: a fire caused by one (a
        # process's exit by its start) links to it without reading the journal.
        self._spans: OrderedDict[str, SpanRef | None] = OrderedDict()

    def fire(
        self,
        entity: str | Entity,
        event: str,
        params: Mapping[str, Any] | None,
        idempotency_key: str | None,
        cause: Cause | None = None,
        *,
        durable: bool = True,
    ) -> Result:
        """See :meth:`engine.Engine.fire`; ``cause``: the transition that caused this fire."""
        s = self._s
        s.check_open()
        params = json_value(dict(params), "event params") if params else {}
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 300
        ):
            raise InvalidParameter("an idempotency key is a string of 1 to 300 characters")
        row, guessed = s.resolve(entity)
        try:
            return self._fire_row(row, guessed, event, params, idempotency_key, cause, durable)
        except Renamed:
            # The cache's guess was out of date (nothing was written): the name's entity
            # is read, and that one fired.
            if guessed is not None:
                s.names.pop(guessed, None)
            row, _ = s.resolve(entity)
            return self._fire_row(row, None, event, params, idempotency_key, cause, durable)

    def _fire_row(
        self,
        row: EntityRow,
        guessed: str | None,
        event: str,
        params: Mapping[str, Any],
        idempotency_key: str | None,
        cause: Cause | None,
        durable: bool,
    ) -> Result:
        """:meth:`fire` on the entity ``row`` (guessed by the name ``guessed``, if given)."""
        s = self._s
        started = time.perf_counter()
        s.check_owned(row, f"fire {event!r}")
        # Before anything is decided or reported: params the chart's schema refuses are
        # refused on every path (the API's, a timer's, a follow-up's) alike.
        model = s.registered(row).chart.model
        params = model.schema.check_params(event, params, entity=row.name, id=row.id)
        # What the observer hears: an event the chart has, or one word for any other, so
        # that a caller's made-up names neither grow the metrics without end nor reach
        # them as text no exposition can encode.
        heard = event if event in model.events else UNKNOWN_EVENT
        if s.locks.held_here(row.id):
            # The entity's lock is this thread's own: waiting for it would never end.
            raise Conflict(
                f"{event!r} was fired on {row.name} from inside its own transition; "
                "schedule it (ctx.schedule) or declare it as the transition's follow-up (then)"
            )
        outcome: list[Any] = ["rejected", None]  # what the observer hears, and the follow-up
        error: BaseException | None = None
        span = s.observer.transition_started(row.chart, row.id, heard, row.name, self._link(cause))
        origin = Origin(span, cause.transition_id if cause is not None else None)
        try:
            return self._locked(
                row, event, params, idempotency_key, outcome, origin, durable, guessed
            )
        except BaseException as exc:
            error = exc
            raise
        finally:
            s.observer.transition(
                row.chart, row.id, heard, outcome[0], time.perf_counter() - started, error
            )
            if outcome[1] is not None:
                self._follow(outcome[1])

    def fire_many(
        self, requests: Iterable[Sequence[Any]], concurrency: int
    ) -> list[Result | ChartdError]:
        """See :meth:`engine.Engine.fire_many`."""
        self._s.check_open()
        if not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
            raise InvalidParameter(f"concurrency must be between 1 and 256, got {concurrency!r}")
        units = list(requests)
        out: list[Result | ChartdError | None] = [None] * len(units)
        if not units:
            return []

        def run(i: int) -> None:
            try:
                entity, event, params, key = _request(units[i])
                out[i] = self.fire(entity, event, params, key)
            except ChartdError as exc:
                out[i] = exc
            except Exception as exc:  # a unit's bug is that unit's error, never the batch's
                out[i] = as_error(exc, f"unit {i} of the batch")

        if concurrency == 1 or len(units) == 1:
            for i in range(len(units)):
                run(i)
        else:
            # Concurrent fires share commits (group commit), and sagas run their steps
            # side by side; a unit's lock still serialises fires on one entity. Each
            # unit runs in a copy of the caller's context: its span (an RPC's) parents
            # the fires on the pool's threads too.
            caller = contextvars.copy_context()
            with ThreadPoolExecutor(min(concurrency, len(units)), "chartd-fire-many") as pool:
                list(pool.map(lambda i: caller.copy().run(run, i), range(len(units))))
        return [r for r in out if r is not None]

    def _locked(
        self,
        row: EntityRow,
        event: str,
        params: Mapping[str, Any],
        key: str | None,
        outcome: list[Any],
        origin: Origin,
        durable: bool = True,
        guessed: str | None = None,
    ) -> Result:
        """Decide and run the fire with the entity's lock held, retrying a stale decision.

        ``outcome`` is filled in as [observed outcome, follow-up or None] on the
        way out, whichever way that is; ``origin`` is journaled with the transition.
        """
        s = self._s
        if row.id in s.recovering or row.id in s.stranded:
            # Recovery holds the entity's lock until it is done, and a stranded saga (its
            # end not recorded) holds the entity until housekeeping finishes it: say so.
            raise Unavailable(f"{row.name} is being recovered; try again")
        s.locks.acquire(row.id)
        try:
            if row.id in s.stranded:
                # Stranded while this fire waited for the lock (the saga that held it
                # could not record its end): a fire now would strand behind it.
                raise Unavailable(f"{row.name} is being recovered; try again")
            for _ in range(s.limits.retries):
                decided_on = s.cache.get(row.id)
                try:
                    with s.commit.busy():
                        result, outcome[1] = self._fire_once(
                            row.id, event, params, key, origin, durable, guessed
                        )
                    outcome[0] = "replayed" if result.replayed else "committed"
                    return result
                except Stale:
                    s.cache.pop(row.id, None)
                    s.contended[row.id] = True
                except SagaFailed as failed:
                    outcome[0], outcome[1] = "failed", failed.follow_up
                    raise failed.error from None
                except Renamed:
                    raise
                except ChartdError as exc:
                    # A refusal writes nothing, so no version check caught a stale
                    # cache: decide again if another engine moved the entity. (An
                    # entity that cannot be decided on now is no stale decision.)
                    if (
                        isinstance(exc, Unavailable)
                        or decided_on is None
                        or not self._moved(decided_on)
                    ):
                        raise
            raise Contended(
                f"{row.name} changed concurrently {s.limits.retries} times while {event!r} "
                "was being decided; try again"
            )
        finally:
            s.locks.release(row.id)

    def _moved(self, cached: EntityRow) -> bool:
        """Whether the stored entity is newer than ``cached``; if so the cache is refreshed."""
        fresh = self._s.store.entity(cached.id)
        if fresh is None or fresh.version == cached.version:
            return False
        self._s.cache[cached.id] = fresh
        return True

    def _link(self, cause: Cause | None) -> SpanRef | None:
        """The span of the transition ``cause`` names: as given, else as journaled."""
        if cause is None or cause.span is not None or cause.known:
            return cause.span if cause is not None else None
        if cause.transition_id in self._spans:
            return self._spans.get(cause.transition_id)
        try:
            row = self._s.store.transition_by_id(cause.transition_id)
        except ChartdError as exc:  # the link is worth no failed fire
            log.debug("no link to %s: %s", cause.transition_id, exc.message)
            return None
        return row.trace if row is not None else None

    def _follow(self, follow_up: _FollowUp) -> None:
        pending: deque[_FollowUp] | None = getattr(self._chain, "pending", None)
        if pending is not None:
            # A follow-up of a follow-up: the loop below fires it, so that a chain
            # of them runs in a loop, not on an ever deeper stack.
            pending.append(follow_up)
            return
        pending = self._chain.pending = deque([follow_up])
        try:
            for _ in range(MAX_FOLLOW_UPS):
                if not pending:
                    return
                entity_id, event, cause = pending.popleft()
                try:
                    self.fire(entity_id, event, None, None, cause)
                except ChartdError as exc:
                    log.warning("follow-up %r on %s failed: %s", event, entity_id[:12], exc.message)
            if pending:
                # A cycle of follow-ups would fire forever; `chartd chart check` reports
                # such charts. Stopping leaves every fire so far committed and journaled.
                log.error(
                    "follow-ups did not end: %d in a row; %r on %s not fired",
                    MAX_FOLLOW_UPS,
                    pending[0][1],
                    pending[0][0][:12],
                )
        finally:
            self._chain.pending = None

    def _fire_once(
        self,
        entity_id: str,
        event: str,
        params: Mapping[str, Any],
        key: str | None,
        origin: Origin,
        durable: bool = True,
        guessed: str | None = None,
    ) -> tuple[Result, _FollowUp | None]:
        """Decide and run one fire; its result and the follow-up event it declares, if any.

        Renamed if the entity was ``guessed`` by a name it no longer has live.
        """
        s = self._s
        row = s.cache.get(entity_id) or s.row(entity_id)
        s.cache[entity_id] = row
        if guessed is not None and not (row.live and row.name == guessed):
            raise Renamed(f"{guessed} names another entity now")
        reg = s.registered(row)
        if key is not None:
            recorded = s.store.transition(row.id, key)
            if recorded is not None:
                if recorded.event != event or dict(recorded.params) != dict(params):
                    raise InvalidParameter(
                        f"idempotency key {key!r} was used for {recorded.event!r} with other "
                        "params on this entity; a retry must repeat the request, or use a new key"
                    )
                return self._replay(row, recorded), None
        source = core.Snapshot(row.configuration, row.data, row.version, row.history)
        plan = core.step(
            reg.chart,
            source,
            event,
            params,
            conditions=reg.bindings.conditions,
            fields={"id": row.id, "entity": row.name},
        )
        ctx = Context(
            entity_id=row.id,
            entity_name=row.name,
            chart=row.chart,
            event=event,
            params=params,
            transition_id=s.next_transition_id(),
            source=source,
            target=plan.snapshot,
            now=s.clock.now(),
        )
        for name in plan.guards:
            try:
                reg.bindings.guards[name](ctx)
            except Exception as exc:
                raise as_error(exc, f"guard {name}") from exc
        steps = [reg.bindings.steps[name] for name in plan.steps]
        result = self._saga.run(
            Fire(reg, row, plan, ctx, steps, key, origin=origin, durable=durable)
        )
        self._spans[ctx.transition_id] = origin.trace
        if len(self._spans) > _SPANS_KEPT:
            with contextlib.suppress(KeyError):  # popitem is atomic; another fire may pop too
                self._spans.popitem(last=False)
        for t in plan.transitions:
            if t.then is not None and core.holds(
                t.then.when, result.entity.snapshot, params, reg.bindings.conditions
            ):
                cause = Cause(ctx.transition_id, origin.trace, known=True)
                return result, (row.id, t.then.event, cause)
        return result, None

    def _replay(self, row: EntityRow, recorded: TransitionRow) -> Result:
        if recorded.status == "committed":
            current = self._s.row(row.id)
            return Result(
                Entity.from_row(current),
                recorded.event,
                recorded.id,
                tuple(recorded.plan["steps"]),
                replayed=True,
            )
        if recorded.status in ("failed", "compensation_failed"):
            raise error_for(recorded.error_category or "system", recorded.error_message or "failed")
        raise Conflict(
            f"a transition with idempotency key {recorded.idempotency_key!r} is still in "
            f"progress on {row.name}"
        )


def _request(unit: Sequence[Any]) -> tuple[str | Entity, str, Mapping[str, Any] | None, str | None]:
    """A fire_many unit as (entity, event, params, idempotency key); InvalidParameter if bad."""
    if isinstance(unit, str | bytes) or not isinstance(unit, Sequence) or not 2 <= len(unit) <= 4:
        raise InvalidParameter(
            f"a fire request is (entity, event[, params[, idempotency_key]]), got {unit!r}"
        )
    entity, event, params, key = (*unit, None, None)[:4]
    if not isinstance(event, str):
        raise InvalidParameter(f"an event is a string, got {event!r}")
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameter(f"event params are a mapping, got {params!r}")
    return entity, event, params, key
