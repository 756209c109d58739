"""Containers: moby's container operations on the durable engine and a runtime.

The chart decides what each operation may do in each state (with moby's
refusals); this service adds what lies outside one transition: validating a
create, looking containers up by name or ID prefix, waiting for a stop to
take effect, feeding the runtime's exits to the chart, and the daemon's
shutdown and restore.
"""

from __future__ import annotations

import logging
import secrets
import signal as _signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import engine
from engine.errors import (
    ChartdError,
    Conflict,
    InvalidParameter,
    NotFound,
    NotModified,
    Unavailable,
)
from statecharts.container import load_chart, moby
from statecharts.container.bindings import container_bindings, log_path
from statecharts.container.network import AddressPool
from statecharts.container.runtime import ExitEvent, Runtime

__all__ = ["Containers", "status_of"]

_Ids = list[str]  # Containers has a method named `list`

log = logging.getLogger("chartd.containers")

CHART = "container"
_CONDITIONS = ("not-running", "next-exit", "removed")
_ADJECTIVES = ("brave", "calm", "eager", "gentle", "jolly", "keen", "lucid", "quiet", "swift")
_NOUNS = ("curie", "darwin", "euler", "galois", "hopper", "lovelace", "noether", "turing")


def status_of(configuration: Sequence[str]) -> str:
    """moby's status string of a configuration: created, running, paused, restarting, ..."""
    leaf = configuration[-1] if configuration else "created"
    return {
        "running.active": "running",
        "running.paused": "paused",
        "running.restarting": "restarting",
        "starting": "created",
    }.get(leaf, leaf)


def _time(value: Any) -> str:
    if not value:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")


class Containers:
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
        eng.register(load_chart(), container_bindings(runtime, self.pool, root, clock=clock))
        runtime.subscribe(self._on_exit)
        self._closing = False

    # -- lookup ------------------------------------------------------------------

    def get(self, ref: str | engine.Entity) -> engine.Entity:
        """The container named ``ref`` (with or without ``/``), or with that ID or ID prefix."""
        if isinstance(ref, engine.Entity):
            return self.engine.get(ref.id)
        if not isinstance(ref, str) or not ref:
            raise InvalidParameter(f"invalid name or ID supplied: {ref!r}".replace("'", '"'))
        try:
            return self.engine.get(ref.lstrip("/"), CHART)
        except NotFound:
            pass
        matches = [
            e for e in self._all() if e.id.startswith(ref) and e.in_state("removed") is False
        ]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NotFound(f"No such container: {ref}")
        return matches[0]

    def _all(self) -> Iterator[engine.Entity]:
        after = 0
        while True:
            page = self.engine.list(CHART, after=after, limit=1000)
            yield from page.items
            if page.after is None:
                return
            after = page.after

    def list(self, *, all: bool = False, status: str | None = None) -> list[engine.Entity]:
        """Live containers, newest first; running ones only unless ``all``."""
        out = []
        for e in self._all():
            if e.in_state("removed"):
                continue
            current = status_of(e.configuration)
            if status is not None and current != status:
                continue
            if not all and status is None and not e.in_state("running"):
                continue
            out.append(e)
        return sorted(out, key=lambda e: e.created_at, reverse=True)

    # -- create ------------------------------------------------------------------

    def create(
        self,
        cmd: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        labels: Mapping[str, str] | None = None,
        stop_signal: str | int | None = None,
        stop_timeout: int | None = None,
        restart: str | None = None,
        auto_remove: bool = False,
    ) -> engine.Entity:
        """A new container in state ``created``; moby's checks and messages."""
        if not cmd:
            raise InvalidParameter("No command specified")
        if not all(isinstance(a, str) for a in cmd):
            raise InvalidParameter("the command must be a list of strings")
        policy = moby.parse_restart_policy(restart)
        if auto_remove and policy.name != "no":
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        signal = moby.parse_signal(stop_signal) if stop_signal not in (None, "") else None
        if stop_timeout is not None and not isinstance(stop_timeout, int):
            raise InvalidParameter(f"invalid stop timeout: {stop_timeout!r}")
        if working_dir and not working_dir.startswith("/"):
            raise InvalidParameter(
                f"the working directory '{working_dir}' is invalid, it needs to be an absolute path"
            )
        canonical = moby.valid_name(name) if name else None
        for _ in range(10):
            if canonical is None:
                candidate = f"/{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"
                if self._taken(candidate) is None:
                    canonical = candidate
                continue
            break
        assert canonical is not None
        holder = self._taken(canonical)
        if holder is not None:
            raise Conflict(
                f'Conflict. The container name "{canonical}" is already in use by container '
                f'"{holder.id}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )
        data: dict[str, Any] = {
            "name": canonical,
            "cmd": list(cmd),
            "env": dict(env or {}),
            "working_dir": working_dir,
            "labels": dict(labels or {}),
            "stop_signal": signal or moby.DEFAULT_STOP_SIGNAL,
            "stop_signal_set": signal is not None,
            "stop_timeout": stop_timeout,
            "restart_policy": policy.as_data(),
            "auto_remove": bool(auto_remove),
            "restart_count": 0,
            "exit_code": 0,
            "error": "",
            "pid": 0,
        }
        try:
            entity = self.engine.create(CHART, canonical.lstrip("/"), data)
        except Conflict:
            holder = self._taken(canonical)
            raise Conflict(
                f'Conflict. The container name "{canonical}" is already in use by container '
                f'"{holder.id if holder else ""}". You have to remove (or rename) that container '
                "to be able to reuse that name."
            ) from None
        return entity

    def _taken(self, canonical: str) -> engine.Entity | None:
        try:
            found = self.engine.get(canonical.lstrip("/"), CHART)
        except NotFound:
            return None
        return None if found.in_state("removed") else found

    # -- operations ----------------------------------------------------------------

    def _fire(
        self, ref: str | engine.Entity, event: str, params: Mapping[str, Any] | None = None
    ) -> engine.Entity:
        container = self.get(ref)
        return self.engine.fire(container, event, dict(params or {})).entity

    def start(self, ref: str | engine.Entity) -> engine.Entity:
        """Start a created or exited container (NotModified if it runs already)."""
        return self._fire(ref, "start")

    def stop(
        self,
        ref: str | engine.Entity,
        *,
        timeout: int | None = None,
        signal: str | int | None = None,
    ) -> engine.Entity:
        """Send the stop signal, kill after ``timeout`` seconds, and wait until it stopped."""
        params: dict[str, Any] = {}
        if signal not in (None, ""):
            params["signal"] = moby.parse_signal(signal)
        if timeout is not None:
            params["timeout"] = int(timeout)
        container = self.get(ref)
        try:
            after = self.engine.fire(container, "stop", params).entity
        except ChartdError as exc:
            if isinstance(exc, NotModified):
                raise
            raise exc.wrap(
                f"cannot stop container: {container.data.get('name', '').lstrip('/')}"
            ) from exc
        if not after.in_state("running"):
            return after
        limit = params.get("timeout", container.data.get("stop_timeout"))
        limit = moby.DEFAULT_STOP_TIMEOUT if limit is None else limit
        deadline = None if limit < 0 else time.monotonic() + limit + 5.0
        return self._until(container.id, lambda e: not e.in_state("running"), deadline)

    def kill(self, ref: str | engine.Entity, *, signal: str | int | None = None) -> engine.Entity:
        """Send ``signal`` (SIGKILL by default); with an ending signal, wait for the exit."""
        params: dict[str, Any] = {}
        if signal not in (None, ""):
            params["signal"] = signal
        container = self.get(ref)
        after = self.engine.fire(container, "kill", params).entity
        number = moby.parse_signal(signal) if signal not in (None, "") else 9
        if number == 9 and after.in_state("running"):
            return self._until(
                container.id, lambda e: not e.in_state("running"), time.monotonic() + 10.0
            )
        return after

    def pause(self, ref: str | engine.Entity) -> engine.Entity:
        """Freeze every process of the container."""
        return self._fire(ref, "pause")

    def unpause(self, ref: str | engine.Entity) -> engine.Entity:
        """Thaw a paused container."""
        return self._fire(ref, "unpause")

    def restart(self, ref: str | engine.Entity, *, timeout: int | None = None) -> engine.Entity:
        """Stop (if running) and start again, with the restart count reset."""
        params = {} if timeout is None else {"timeout": int(timeout)}
        return self._fire(ref, "restart", params)

    def remove(self, ref: str | engine.Entity, *, force: bool = False) -> engine.Entity:
        """Remove a stopped container (or, with ``force``, kill it first)."""
        container = self.get(ref)
        return self.engine.fire(container, "remove", {"force": bool(force)}).entity

    def rename(self, ref: str | engine.Entity, new_name: str) -> engine.Entity:
        """Give the container a new name (moby's checks and messages)."""
        container = self.get(ref)
        if not new_name or not container.data.get("name"):
            raise InvalidParameter("Neither old nor new names may be empty")
        canonical = moby.valid_name(new_name)
        holder = self._taken(canonical)
        if holder is not None and holder.id != container.id:
            raise Conflict(
                f'Error when allocating new name: Conflict. The container name "{canonical}" '
                f'is already in use by container "{holder.id}". You have to remove (or rename) '
                "that container to be able to reuse that name."
            )
        return self.engine.fire(container, "rename", {"new_name": new_name.lstrip("/")}).entity

    def wait(
        self, ref: str | engine.Entity, condition: str = "not-running", timeout: float | None = None
    ) -> tuple[int, str]:
        """Block until ``condition`` holds; the exit code and error, as moby's wait returns."""
        if condition not in _CONDITIONS:
            raise InvalidParameter(f'invalid condition: "{condition}"')
        container = self.get(ref)
        deadline = None if timeout is None else time.monotonic() + timeout

        # moby wakes the waiters of a stop at every exit, a restarting one too.
        def exited(e: engine.Entity) -> bool:
            return e.version > container.version and (
                not e.in_state("running") or e.in_state("running.restarting")
            )

        if condition == "removed":
            done = self._until(container.id, lambda e: e.in_state("removed"), deadline)
        elif condition == "not-running" and not container.in_state("running"):
            done = container
        else:
            done = self._until(container.id, exited, deadline)
        return int(done.data.get("exit_code") or 0), str(done.data.get("error") or "")

    def _until(
        self, entity_id: str, holds: Callable[[engine.Entity], bool], deadline: float | None
    ) -> engine.Entity:
        since = self.engine.sequence()
        current = self.engine.get(entity_id)
        while not holds(current):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Unavailable(f"timed out waiting for container {entity_id[:12]}")
            for event in self.engine.watch(
                since, filter={"entity": entity_id}, timeout=min(remaining or 1.0, 1.0)
            ):
                since = event.seq
                break
            current = self.engine.get(entity_id)
        return current

    def logs(self, ref: str | engine.Entity) -> Path:
        """The file that holds the container's stdout and stderr."""
        return log_path(self.root, self.get(ref).id)

    # -- the runtime's exits ---------------------------------------------------------

    def _on_exit(self, event: ExitEvent) -> None:
        params = {"exit_code": event.exit_code, "pid": event.pid, "exited_at": event.exited_at}
        # A process may exit while its start is still committing (the entity is held
        # in `starting`): try again shortly, then give up.
        for attempt in range(100):
            if self._closing:
                return
            try:
                self.engine.fire(event.container_id, "exit", params)
                return
            except NotModified:
                return
            except (Conflict, Unavailable) as exc:
                current = self._current(event.container_id)
                if current is None or not (current.in_state("starting") or attempt < 3):
                    log.info("exit of %s not applied: %s", event.container_id[:12], exc.message)
                    return
                time.sleep(0.05)
            except ChartdError as exc:
                log.warning("exit of %s failed: %s", event.container_id[:12], exc.message)
                return

    def _current(self, entity_id: str) -> engine.Entity | None:
        try:
            return self.engine.get(entity_id)
        except ChartdError:
            return None

    # -- the daemon's life ------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every running container with its stop signal and timeout, in parallel.

        As moby does without live-restore; it does not count as a manual stop,
        so restart policies apply again when the daemon starts.
        """
        running = [e for e in self.list() if e.in_state("running")]
        threads = []
        for container in running:
            thread = threading.Thread(target=self._shutdown_one, args=(container,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        self._closing = True

    def _shutdown_one(self, container: engine.Entity) -> None:
        try:
            if container.in_state("running.restarting"):
                self.engine.fire(container, "stop", {"shutdown": True})
                return
            self.engine.fire(container, "stop", {"shutdown": True})
            limit = container.data.get("stop_timeout")
            limit = moby.DEFAULT_STOP_TIMEOUT if limit is None else max(0, limit)
            self._until(
                container.id, lambda e: not e.in_state("running"), time.monotonic() + limit + 5
            )
        except ChartdError as exc:
            log.warning("shutdown of %s: %s", container.id[:12], exc.message)

    def restore(self) -> _Ids:
        """Reconcile after a daemon start; the IDs of the containers started again.

        Processes left by a daemon that crashed are killed and their
        containers marked exited; then restart policies apply as moby's
        restore applies them: ``always`` restarts even after a manual stop,
        ``unless-stopped`` does not, a container never started stays created.
        """
        left = {t.container_id: t for t in self.runtime.tasks()}
        for container_id, task in left.items():
            ended = self.runtime.delete_task(container_id)
            code = ended.exit_code if ended is not None else 137
            try:
                self.engine.fire(
                    container_id,
                    "exit",
                    {
                        "exit_code": code,
                        "pid": task.pid,
                        "exited_at": self._clock(),
                        "restored": True,
                    },
                )
            except ChartdError as exc:
                log.info("restore of %s: %s", container_id[:12], exc.message)
        started = []
        for listed in self.list(all=True):
            container = listed
            data = container.data
            if container.in_state("running") and container.id not in left:
                # The engine says running, but there is no process: it exited unseen.
                try:
                    self.engine.fire(
                        container,
                        "exit",
                        {"exit_code": 255, "pid": data.get("pid"), "exited_at": self._clock()},
                    )
                    container = self.engine.get(container.id)
                except ChartdError:
                    continue
            if not container.in_state("exited") or not data.get("has_been_started_before"):
                continue
            policy = moby.RestartPolicy.from_data(data.get("restart_policy"))
            if policy.name == "no":
                continue
            if moby.should_restart(
                policy,
                int(container.data.get("exit_code") or 0),
                bool(container.data.get("manually_stopped")),
                int(container.data.get("restart_count") or 0),
            ):
                try:
                    self.engine.fire(container, "start")
                    started.append(container.id)
                except ChartdError as exc:
                    log.warning(
                        "restart of %s on restore failed: %s", container.id[:12], exc.message
                    )
        return started

    # -- inspect ---------------------------------------------------------------------------

    def inspect(self, ref: str | engine.Entity) -> dict[str, Any]:
        """The container as ``docker inspect`` shows it (the fields chartd has)."""
        c = self.get(ref)
        d = c.data
        status = status_of(c.configuration)
        policy = moby.RestartPolicy.from_data(d.get("restart_policy"))
        return {
            "Id": c.id,
            "Name": d.get("name"),
            "Created": _time(c.created_at),
            "State": {
                "Status": status,
                "Running": c.in_state("running"),
                "Paused": c.in_state("running.paused"),
                "Restarting": c.in_state("running.restarting"),
                "OOMKilled": bool(d.get("oom_killed")),
                "Dead": c.in_state("dead"),
                "Pid": int(d.get("pid") or 0)
                if c.in_state("running.active") or c.in_state("running.paused")
                else 0,
                "ExitCode": int(d.get("exit_code") or 0),
                "Error": str(d.get("error") or ""),
                "StartedAt": _time(d.get("started_at")),
                "FinishedAt": _time(d.get("finished_at")),
            },
            "RestartCount": int(d.get("restart_count") or 0),
            "Config": {
                "Cmd": list(d.get("cmd") or []),
                "Env": [f"{k}={v}" for k, v in sorted((d.get("env") or {}).items())],
                "WorkingDir": d.get("working_dir") or "",
                "Labels": dict(d.get("labels") or {}),
                "StopSignal": _signal_name(d.get("stop_signal"))
                if d.get("stop_signal_set")
                else "",
                "StopTimeout": d.get("stop_timeout"),
            },
            "HostConfig": {
                "RestartPolicy": {
                    "Name": policy.name,
                    "MaximumRetryCount": policy.maximum_retry_count,
                },
                "AutoRemove": bool(d.get("auto_remove")),
            },
            "NetworkSettings": {"IPAddress": d.get("address", "")},
            "LogPath": str(log_path(self.root, c.id)),
        }


def _signal_name(number: Any) -> str:
    try:
        return _signal.Signals(int(number)).name
    except (ValueError, TypeError):
        return str(number)
