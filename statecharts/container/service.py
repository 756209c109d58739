"""Containers: moby's container operations on the durable engine and a runtime.

The chart decides what each operation may do in each state (with moby's
refusals); this service adds what lies outside one transition: validating a
create, looking containers up by name or ID prefix, waiting for a stop to
take effect, feeding the runtime's exits to the chart (through
:mod:`~statecharts.container.exit_recorder`), and the daemon's shutdown and
restore.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Unpack

import engine
from engine.errors import (
    ChartdError,
    Conflict,
    DeadlineExceeded,
    InvalidParameter,
    NotFound,
    NotModified,
    Unavailable,
)
from statecharts.container import calls, load_chart, moby
from statecharts.container.bindings import container_bindings, log_path
from statecharts.container.calls import TimeLeft
from statecharts.container.creation import (
    CreateOptions,
    check_keywords,
    generated_name,
    initial_data,
    name_in_use,
)
from statecharts.container.daemonlife import DaemonLife, is_stopped
from statecharts.container.execs import ExecOutput, ExecProber, Execs, check_command
from statecharts.container.exit_recorder import ExitRecorder
from statecharts.container.health import health_status
from statecharts.container.listing import Filters, ListFilter
from statecharts.container.network import AddressPool
from statecharts.container.outtap import OutputTap
from statecharts.container.runtime import Runtime
from statecharts.container.status import RUNNING, inspect_document, status_of
from statecharts.container.verbs import ContainerVerbs

__all__ = ["Containers", "status_of"]


CHART = "container"
_CONDITIONS = ("not-running", "next-exit", "removed")
_KILL_PREFIX = "cannot kill container: "


class Containers(ContainerVerbs, DaemonLife):
    """Containers as moby runs them, on a registered container chart.

    ``root`` is the daemon's state directory (container directories, logs,
    address leases live under it).
    """

    def __init__(
        self,
        eng: engine.Engine,
        runtime: Runtime,
        root: Path,
        *,
        pool: AddressPool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = eng
        self.runtime = runtime
        self.root = root
        self.pool = pool or AddressPool("10.88.0.0/16", root / "network")
        self._clock = clock
        self._prober = ExecProber(runtime, self._probed)
        eng.register(
            load_chart(),
            container_bindings(runtime, self.pool, root, clock=clock, prober=self._prober),
        )
        self._execs = Execs(runtime, self._fire_by_id)
        self._turns = calls.Turns()
        # Tasks a previous daemon left (it crashed): their exits are reconciled as
        # moby's restore does, whether restore() or the runtime reports them first.
        self._inherited = {(t.container_id, t.pid) for t in runtime.tasks()}
        self._exits = ExitRecorder(eng, self._inherited)
        runtime.subscribe(self._exits.put)
        self._pruning = threading.Lock()  # one prune at a time, as moby's pruneRunning

    # -- lookup ------------------------------------------------------------------

    def get(self, ref: str | engine.Entity) -> engine.Entity:
        """The container named ``ref`` (with or without ``/``), or with that ID or ID prefix."""
        if isinstance(ref, engine.Entity):
            return self.engine.get(ref.id)
        if not isinstance(ref, str) or not ref:
            raise InvalidParameter(f"invalid name or ID supplied: {ref!r}".replace("'", '"'))
        try:
            found = self.engine.get(ref.lstrip("/"), CHART)
        except NotFound:
            pass
        else:
            # A removed container no longer exists for moby (its name may name the
            # latest removed entity, kept for its history).
            if not found.in_state("removed"):
                return found
        matches = [
            e for e in self._all() if e.id.startswith(ref) and e.in_state("removed") is False
        ]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NotFound(f"No such container: {ref}")
        return matches[0]

    def _all(self) -> Iterator[engine.Entity]:
        """Every container that exists: removed ones (kept for their history) are not read."""
        after = 0
        while True:
            page = self.engine.list(CHART, after=after, limit=1000, live=True)
            yield from page.items
            if page.after is None:
                return
            after = page.after

    def list(
        self, *, all: bool = False, status: str | None = None, filters: Filters | None = None
    ) -> list[engine.Entity]:
        """This node's live containers, newest first; running ones only unless ``all``.

        Containers of other daemons on the same database (other nodes) are
        theirs to list, stop at shutdown and reconcile on restore.

        ``filters`` are ``ps --filter``'s (see :mod:`statecharts.container.listing`),
        checked first: InvalidParameter with moby's message for a bad one.
        """
        chosen = ListFilter.of(filters or {})
        everything = [
            e
            for e in self._all()
            if not e.in_state("removed") and e.node in (None, self.engine.node)
        ]
        ids = [e.id for e in everything]
        out = []
        for e in everything:
            current = status_of(e.configuration, e.data)
            if status is not None and current != status:
                continue
            if not (all or status or chosen.lists_stopped) and current not in RUNNING:
                continue
            if chosen.id_matches(e.id, ids) and chosen.matches(
                status=current,
                name=str(e.data.get("name", "")),
                labels=e.data.get("labels") or {},
                exit_code=int(e.data.get("exit_code") or 0),
                started=bool(e.data.get("started_at")),
                health=self.health(e) if chosen.health else "none",
            ):
                out.append(e)
        return sorted(out, key=lambda e: e.created_at, reverse=True)

    # -- create ------------------------------------------------------------------

    def create(self, cmd: Sequence[str], **options: Unpack[CreateOptions]) -> engine.Entity:
        """A new container in state ``created``; moby's checks and messages.

        ``options`` are :class:`~statecharts.container.creation.CreateOptions`.
        """
        check_keywords(options)
        data = initial_data(cmd, options)
        name = options.get("name")
        canonical = moby.valid_name(name) if name else self._free_generated_name()
        holder = self._taken(canonical)
        if holder is not None:
            raise Conflict(name_in_use(canonical, holder.id))
        try:
            return self.engine.create(CHART, canonical.lstrip("/"), {"name": canonical, **data})
        except Conflict:
            holder = self._taken(canonical)
            raise Conflict(name_in_use(canonical, holder.id if holder else "")) from None

    def _free_generated_name(self) -> str:
        attempt = 0
        while self._taken(candidate := generated_name(attempt)) is not None:
            attempt += 1
        return candidate

    def _taken(self, canonical: str) -> engine.Entity | None:
        try:
            found = self.engine.get(canonical.lstrip("/"), CHART)
        except NotFound:
            return None
        return None if found.in_state("removed") else found

    # -- operations ----------------------------------------------------------------

    def _fire(
        self,
        ref: str | engine.Entity,
        event: str,
        params: Mapping[str, Any] | None = None,
        time_left: TimeLeft | None = None,
    ) -> engine.Entity:
        container = self.get(ref)
        if event in ("start", "restart"):
            # Its task is made soon: the runtime prepares it beside the start's first commit.
            self.runtime.prepare_task(container.id)
        try:
            return self._fire_on(container, event, params, time_left)
        except ChartdError as exc:
            raise _as_typed(exc, container, ref) from None

    def _fire_on(
        self,
        container: engine.Entity,
        event: str,
        params: Mapping[str, Any] | None,
        time_left: TimeLeft | None,
        durable: bool = True,
    ) -> engine.Entity:
        """Fire on the container in its turn; a step that waits sees the caller's time."""
        with self._turns.hold(container.id, time_left), calls.calling(time_left):
            fired = self.engine.fire(container, event, dict(params or {}), durable=durable)
            return fired.entity

    # Every operation below takes ``time_left``: how long its caller still waits
    # (see statecharts.container.calls). Without it, it waits as long as it must.

    def start(
        self, ref: str | engine.Entity, *, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Start a created or exited container (NotModified if it runs already)."""
        return self._fire(ref, "start", time_left=time_left)

    def stop(
        self,
        ref: str | engine.Entity,
        *,
        timeout: int | None = None,
        signal: str | int | None = None,
        time_left: TimeLeft | None = None,
    ) -> engine.Entity:
        """Send the stop signal, kill after ``timeout`` seconds, and wait until it stopped.

        A bad signal is refused under moby's ``cannot stop container: REF: `` (its
        category kept), and only for a running container: a stopped one is NotModified.
        """
        container = self.get(ref)  # as moby: a container that is not there comes first
        try:
            params = _stop_params(container, timeout, signal)
            # Not waited for: the exit it causes commits with it (one sync for both), and
            # this returns only once a commit carried it (until() reads what committed).
            after = self._fire_on(container, "stop", params, time_left, durable=False)
        except ChartdError as exc:
            if isinstance(exc, (NotModified, DeadlineExceeded)):
                raise
            raise exc.wrap(f"cannot stop container: {_typed(ref)}") from exc
        if not after.in_state("running"):  # a restarting container: no exit follows
            return self._until(container.id, lambda e: e.version >= after.version, None, time_left)
        limit = params.get("timeout", container.data.get("stop_timeout"))
        limit = moby.DEFAULT_STOP_TIMEOUT if limit is None else limit
        deadline = None if limit < 0 else time.monotonic() + limit + 5.0
        return self._until(container.id, is_stopped, deadline, time_left)

    def kill(
        self,
        ref: str | engine.Entity,
        *,
        signal: str | int | None = None,
        time_left: TimeLeft | None = None,
    ) -> engine.Entity:
        """Send ``signal`` (SIGKILL by default); with an ending signal, wait for the exit.

        Every error names the container as ``ref`` was typed, under moby's API
        router's ``cannot kill container: REF: ``; the signal is checked before
        the container is looked up, as moby's ``ContainerKill`` does.
        """
        params: dict[str, Any] = {}
        try:
            number = 9
            if signal not in (None, ""):
                number = moby.kill_signal(signal)
                # moby's Atoi takes "+10": the steps are given the number
                params["signal"] = number if str(signal).startswith("+") else signal
            after = self._fire(ref, "kill", params, time_left)  # a refusal names ref as typed
            if number == 9 and after.in_state("running"):
                return self._until(after.id, is_stopped, time.monotonic() + 10.0, time_left)
            return after
        except ChartdError as exc:
            if exc.message.startswith(_KILL_PREFIX):  # the chart's refusal says it already
                raise
            raise exc.wrap(f"{_KILL_PREFIX}{_typed(ref)}") from exc

    def pause(
        self, ref: str | engine.Entity, *, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Freeze every process of the container."""
        return self._fire(ref, "pause", time_left=time_left)

    def unpause(
        self, ref: str | engine.Entity, *, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Thaw a paused container."""
        return self._fire(ref, "unpause", time_left=time_left)

    def restart(
        self,
        ref: str | engine.Entity,
        *,
        timeout: int | None = None,
        signal: str | int | None = None,
        time_left: TimeLeft | None = None,
    ) -> engine.Entity:
        """Stop (if running) and start again, with the restart count reset.

        The stop sends ``signal`` (the container's stop signal by default), as
        ``stop`` does; a bad one is refused under moby's ``Cannot restart container
        REF: `` (its category kept), and only for a running container.
        """
        params = {} if timeout is None else {"timeout": int(timeout)}
        if signal not in (None, ""):
            container = self.get(ref)  # as moby: a container that is not there comes first
            try:
                params = _stop_params(container, timeout, signal)
            except InvalidParameter as exc:
                raise exc.wrap(f"Cannot restart container {_typed(ref)}") from exc
        return self._fire(ref, "restart", params, time_left)

    def remove(
        self, ref: str | engine.Entity, *, force: bool = False, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Remove a stopped container (or, with ``force``, kill it first)."""
        container = self.get(ref)
        try:
            return self._fire_on(container, "remove", {"force": bool(force)}, time_left)
        except ChartdError as exc:
            if getattr(exc, "transition_id", None) is None:
                raise _as_typed(exc, container, ref) from None  # a refusal: moby's text
            # The removal saga failed (the container is dead now): moby's containerRm
            # wraps the cause, whose own text is what inspect's Error shows.
            name = ref if isinstance(ref, str) else container.data.get("name", "")
            raise exc.wrap(f'cannot remove container "{name}"') from exc

    def rename(
        self, ref: str | engine.Entity, new_name: str, *, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Give the container a new name (moby's checks and messages)."""
        if not new_name or not ref:
            raise InvalidParameter("Neither old nor new names may be empty")
        container = self.get(ref)
        # moby's rename.go canonicalizes the new name before it checks it, so an
        # invalid one is reported with its slash, under reserveName's wrapper.
        canonical = new_name if new_name.startswith("/") else "/" + new_name
        if canonical == container.data.get("name"):
            raise InvalidParameter("Renaming a container with the same name as its current name")
        try:
            moby.valid_name(canonical)
        except InvalidParameter as exc:
            raise exc.wrap("Error when allocating new name") from exc
        holder = self._taken(canonical)
        if holder is not None and holder.id != container.id:
            raise Conflict(f"Error when allocating new name: {name_in_use(canonical, holder.id)}")
        return self._fire_on(container, "rename", {"new_name": new_name.lstrip("/")}, time_left)

    def wait(
        self,
        ref: str | engine.Entity,
        condition: str = "not-running",
        timeout: float | None = None,
        *,
        time_left: TimeLeft | None = None,
        since: int | None = None,
    ) -> tuple[int, str]:
        """Block until ``condition`` holds; the exit code and error, as moby's wait returns.

        ``not-running`` holds at once for a container that is not running
        (created, exited, dead); otherwise, like ``next-exit``, it waits for the
        container's next exit, a restarting one's too (moby wakes the stop
        waiters at every exit), and returns that exit's code. ``removed`` waits
        until the container is removed. Unavailable after ``timeout`` seconds,
        DeadlineExceeded once the caller has gone. ``since`` (an engine
        sequence read before the caller was told it waits) counts the exits
        after it: a caller that starts the container once told misses none.
        """
        if condition not in _CONDITIONS:
            raise InvalidParameter(f'invalid condition: "{condition}"')
        if since is None:
            since = self.engine.sequence()  # before the read: no event can slip between
        container = self.get(ref)
        running = status_of(container.configuration, container.data) in RUNNING
        if condition == "not-running" and not running:
            return _outcome(container)
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self._events(container.id, since, deadline, time_left):
            if condition != "removed" and event.type == "die":
                # Every exit of the process (to exited or restarting, or ended by a
                # restart or rm -f) emits die with its code, even if the container
                # has moved on by the time this is read.
                return int(event.attributes.get("exitCode") or 0), ""
            if event.type not in ("transition", "transition.failed"):
                continue
            current = self.engine.get(container.id)
            if condition == "removed":
                if current.in_state("removed"):
                    return _outcome(current)
            elif _stopped_without_exit(event, current, running):
                return _outcome(current)
            if event.type == "transition":
                running = "running" in (event.attributes.get("to") or ())
        raise Unavailable(f"timed out waiting for container {container.id[:12]}")

    def _events(
        self, entity_id: str, since: int, deadline: float | None, time_left: TimeLeft | None
    ) -> Iterator[engine.Event]:
        """The entity's outbox events after ``since`` until ``deadline`` (or the engine closes)."""
        while True:
            calls.check(time_left)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            for event in self.engine.watch(
                since, filter={"entity": entity_id}, timeout=min(remaining or 1.0, 1.0)
            ):
                since = event.seq
                yield event
                break

    def _until(
        self,
        entity_id: str,
        holds: Callable[[engine.Entity], bool],
        deadline: float | None,
        time_left: TimeLeft | None = None,
    ) -> engine.Entity:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        found = calls.wait_for(
            lambda seconds: self.engine.until(entity_id, holds, timeout=seconds), timeout, time_left
        )
        if found is None:
            raise Unavailable(f"timed out waiting for container {entity_id[:12]}")
        return found

    def logs(self, ref: str | engine.Entity) -> Path:
        """The file that holds the container's stdout and stderr.

        Conflict for a container of another node: its log is on that machine.
        """
        container = self.get(ref)
        if container.node not in (None, self.engine.node):
            raise Conflict(
                f"the logs of {container.name} are kept on node {container.node!r}, "
                f"not this node ({self.engine.node!r}): read them on node {container.node!r}"
            )
        return log_path(self.root, container.id)

    def open_log(self, ref: str | engine.Entity) -> BinaryIO:
        """The container's log, open for reading at its end (an attach reads on from there).

        Made empty if no start made it yet (the log is only ever appended to),
        so that what a short-lived ``--rm`` container writes can still be read
        once its removal has taken the file off its path.
        """
        path = self.logs(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640), "rb")  # noqa: SIM115
        log.seek(0, os.SEEK_END)
        return log

    def tap_output(self, container_id: str) -> OutputTap:
        """A live, raw tap on the container's output (the Runtime's ``tap``)."""
        self.logs(container_id)  # its output is read on its node only
        return self.runtime.tap(container_id)

    def write_stdin(self, container_id: str, data: bytes, timeout: float) -> int:
        """Write a prefix of ``data`` to the container's stdin (the Runtime's ``write_stdin``)."""
        return self.runtime.write_stdin(container_id, data, timeout)

    def close_stdin(self, container_id: str) -> None:
        """Close the container's stdin (the Runtime's ``close_stdin``)."""
        self.runtime.close_stdin(container_id)

    def resize(self, ref: str | engine.Entity, height: int, width: int) -> engine.Entity:
        """Set the window of the container's TTY (moby's ContainerResize); emits ``resize``.

        Set on the runtime's task first, as moby emits the event once it is set;
        the chart refuses a container without a running task.
        """
        container = self.get(ref)
        if container.in_state("running") and not container.in_state("running.restarting"):
            self.runtime.resize(container.id, height, width)
        return self._fire(container, "resize", {"height": height, "width": width})

    # -- exec (moby's exec.go) ------------------------------------------------------------

    def exec_create(
        self,
        ref: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        tty: bool = False,
        attach_stdin: bool = False,
        console_size: Sequence[int] | None = None,
    ) -> str:
        """A new exec of ``cmd`` in the running container ``ref``; the exec's ID.

        Refused as moby refuses it (Conflict: not running, paused, restarting); a
        missing command first, before the container is looked up.
        """
        check_command(cmd)
        return self._execs.create(
            self.get(ref),
            ref,
            cmd,
            env=env,
            working_dir=working_dir,
            tty=tty,
            attach_stdin=attach_stdin,
            console_size=console_size,
        )

    def exec_start(self, exec_id: str, *, detach: bool = False) -> ExecOutput | None:
        """Run the exec: its output as (stream, bytes), then its ``exit_code`` (None: detached).

        A command that cannot be run raises ExecFailed (exit code 126 or 127).
        """
        return self._execs.start(exec_id, detach=detach)

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        """The exec as moby's exec inspect shows it."""
        return self._execs.inspect(exec_id)

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the window of a running exec's terminal (``docker exec -t``)."""
        self._execs.resize(exec_id, height, width)

    def _fire_by_id(
        self, container_id: str, event: str, params: Mapping[str, Any]
    ) -> engine.Entity:
        return self.engine.fire(container_id, event, dict(params)).entity

    def _probed(self, container_id: str, params: dict[str, Any]) -> None:
        event = "probe_passed" if params["exit_code"] == 0 else "probe_failed"
        self.engine.fire(container_id, event, params)

    # -- inspect ---------------------------------------------------------------------------

    def health_of(self, container: engine.Entity) -> str | None:
        """Its health status (starting, healthy, unhealthy); None without a health check."""
        return health_status(container)

    def inspect(self, ref: str | engine.Entity) -> dict[str, Any]:
        """The container as ``docker inspect`` shows it (the fields chartd has)."""
        return inspect_document(self.get(ref), self.root)


def _typed(ref: str | engine.Entity) -> str:
    """The container as moby's messages name it: the reference its caller typed."""
    return ref if isinstance(ref, str) else str(ref.data.get("name", ref.id)).lstrip("/")


def _stop_params(
    container: engine.Entity, timeout: int | None, signal: str | int | None
) -> dict[str, Any]:
    """The params of a stop, or of a restart's stop: moby's containerStop options.

    moby reads the signal only when it stops the container: for one that is not
    running it is neither checked nor sent.
    """
    params: dict[str, Any] = {} if timeout is None else {"timeout": int(timeout)}
    if signal not in (None, "") and container.in_state("running"):
        params["signal"] = moby.parse_signal(signal)
    return params


def _as_typed(exc: ChartdError, container: engine.Entity, ref: str | engine.Entity) -> ChartdError:
    """The chart's refusal with the container named as its caller typed it.

    moby's messages name a container by the reference given (``web``, ``/web``
    or an ID prefix), the chart's by the canonical ``/web`` it keeps: a refusal
    (no transition ran) gets the reference in its place. The chart's messages
    hold no other ``/``, so the canonical name occurs only where it was put.
    """
    canonical = str(container.data.get("name", ""))
    if (
        not isinstance(ref, str)
        or not canonical
        or ref == canonical
        or getattr(exc, "transition_id", None) is not None
        or canonical not in exc.message
    ):
        return exc
    return exc.reworded(exc.message.replace(canonical, ref))


def _outcome(container: engine.Entity) -> tuple[int, str]:
    """What moby's wait returns: the container's exit code and error."""
    return int(container.data.get("exit_code") or 0), str(container.data.get("error") or "")


def _stopped_without_exit(event: engine.Event, current: engine.Entity, running: bool) -> bool:
    """The event left a running container stopped although no process exited (no ``die``).

    A restarting container stopped, killed or removed; a retry, or a restart
    of a running container, that failed (it ends exited, as moby's SetStopped).
    """
    attributes = event.attributes
    if event.type == "transition.failed":
        return running and current.in_state("exited")
    before, after = set(attributes.get("from") or ()), set(attributes.get("to") or ())
    return "running" in before and not after & {"running", "starting", "removing"}
