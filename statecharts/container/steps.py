"""The container chart's saga steps: what each makes and unmakes, on the runtime.

Every step names what it makes from the container's ID (directories under
the state root, the runtime container and task, the address lease), so an
undo finds it without a payload, is safe when nothing was made, and a
repeated ``do`` does not make it twice: the engine's undo contract.

Layout under ``root``::

    containers/<id>/            the container's own directory (kept until rm)
    containers/<id>/rootfs/     its root filesystem (made by start, removed by cleanup)
    containers/<id>/mounts/     hostname and hosts files (made by start)
    containers/<id>/<id>-json.log   stdout and stderr
    run/<id>/                   the task's runtime directory, with config.json
    trash/                      what the exits removed, until a thread deletes it

A start's directories are made by its steps and removed by the exit's
``cleanup`` (or by the undos); removed means renamed into the trash
(:class:`~statecharts.container.trash.Trash`), deleted in the background.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal as _signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine
from engine.errors import ChartdError, Conflict, NotFound, System
from statecharts.container import calls, moby
from statecharts.container.network import AddressPool
from statecharts.container.runtime import ContainerSpec, Runtime
from statecharts.container.trash import Trash

__all__ = ["ContainerSteps", "container_dir", "log_path"]

_SIGKILL = int(_signal.SIGKILL)


def container_dir(root: Path, container_id: str) -> Path:
    """The directory of one container under the state root."""
    return root / "containers" / container_id


def log_path(root: Path, container_id: str) -> Path:
    """Where the container's stdout and stderr go (moby's json-file path, plain text here)."""
    return container_dir(root, container_id) / f"{container_id}-json.log"


def _run_dir(root: Path, container_id: str) -> Path:
    return root / "run" / container_id


def _pair(size: Any) -> tuple[int, int] | None:
    """A recorded ``[height, width]`` as the spec's pair (None: none recorded)."""
    return (int(size[0]), int(size[1])) if size else None


def _cid(ctx: engine.Context) -> str:
    return ctx.entity_id


class ContainerSteps:
    """The saga steps of the container chart, on a runtime, an address pool and a state root.

    Each public method is one step's ``do`` or ``undo``
    (:func:`~statecharts.container.bindings.container_bindings` pairs them);
    ``clock`` gives the times recorded in the container's data.
    """

    def __init__(
        self, runtime: Runtime, pool: AddressPool, root: Path, clock: Callable[[], float]
    ) -> None:
        self.runtime = runtime
        self.pool = pool
        self.root = root
        self.clock = clock
        self.trash = Trash(root / "trash")

    def _dir(self, ctx: engine.Context) -> Path:
        return container_dir(self.root, _cid(ctx))

    def _run_dir(self, ctx: engine.Context) -> Path:
        return _run_dir(self.root, _cid(ctx))

    # -- the start saga -----------------------------------------------------------------

    def mount_rootfs(self, ctx: engine.Context) -> dict[str, str]:
        """Make the container's root filesystem directory."""
        rootfs = self._dir(ctx) / "rootfs"
        rootfs.mkdir(parents=True, exist_ok=True)
        return {"rootfs": str(rootfs)}

    def unmount_rootfs(self, ctx: engine.Context, payload: Any) -> None:
        """Remove the root filesystem directory."""
        self.trash.discard(self._dir(ctx) / "rootfs")

    def network_sandbox(self, ctx: engine.Context) -> dict[str, str]:
        """Lease the container an address."""
        try:
            address = self.pool.allocate(_cid(ctx))
        except ChartdError as exc:
            raise exc.wrap("failed to set up container networking") from exc
        ctx.data["address"] = address
        return {"address": address}

    def delete_sandbox(self, ctx: engine.Context, payload: Any) -> None:
        """Give the container's address back."""
        self.pool.release(_cid(ctx))

    def container_dirs(self, ctx: engine.Context) -> None:
        """Make the task's runtime directory and the log's directory."""
        self._run_dir(ctx).mkdir(parents=True, exist_ok=True)
        log_path(self.root, _cid(ctx)).parent.mkdir(parents=True, exist_ok=True)

    def remove_dirs(self, ctx: engine.Context, payload: Any) -> None:
        """Remove the task's runtime directory."""
        self.trash.discard(self._run_dir(ctx))

    def mounts(self, ctx: engine.Context) -> None:
        """Write the container's hostname and hosts files."""
        folder = self._dir(ctx) / "mounts"
        folder.mkdir(parents=True, exist_ok=True)
        host = _cid(ctx)[:12]
        (folder / "hostname").write_text(host + "\n")
        address = ctx.data.get("address", "127.0.0.1")
        (folder / "hosts").write_text(f"127.0.0.1\tlocalhost\n{address}\t{host}\n")

    def unmount(self, ctx: engine.Context, payload: Any) -> None:
        """Remove the hostname and hosts files."""
        self.trash.discard(self._dir(ctx) / "mounts")

    def spec(self, ctx: engine.Context) -> None:
        """Write the task's OCI-like ``config.json``."""
        data = ctx.data
        document = {
            "process": {
                "args": list(data.get("cmd") or []),
                "env": [f"{k}={v}" for k, v in sorted((data.get("env") or {}).items())],
                "cwd": data.get("working_dir") or "/",
            },
            "hostname": _cid(ctx)[:12],
            "annotations": dict(data.get("labels") or {}),
        }
        try:
            # The environment may hold secrets: the spec is for the daemon's user alone.
            path = self._run_dir(ctx) / "config.json"
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            with os.fdopen(os.open(path, flags, 0o600), "w") as f:
                os.fchmod(f.fileno(), 0o600)  # a spec an older daemon left keeps its mode
                f.write(json.dumps(document, indent=2))
        except OSError as exc:
            # A spec that cannot be made is the daemon's fault, not the request's.
            raise System(f"cannot write the container spec: {exc}") from exc

    def remove_spec(self, ctx: engine.Context, payload: Any) -> None:
        """Remove ``config.json``."""
        (self._run_dir(ctx) / "config.json").unlink(missing_ok=True)

    def reset_restart_manager(self, ctx: engine.Context) -> None:
        """Start counting restarts and backing off afresh."""
        ctx.data.update(
            restart_count=0, manually_stopped=False, exit_on_next=False, restart_backoff=0.0
        )

    def runtime_container(self, ctx: engine.Context) -> None:
        """Create the runtime's container from the container's data."""
        data = ctx.data
        self.runtime.create(
            ContainerSpec(
                id=_cid(ctx),
                name=str(data.get("name", "")),
                cmd=list(data.get("cmd") or []),
                env=dict(data.get("env") or {}),
                working_dir=data.get("working_dir"),
                stop_signal=int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL),
                labels=dict(data.get("labels") or {}),
                log_path=log_path(self.root, _cid(ctx)),
                root=self._run_dir(ctx),
                open_stdin=bool(data.get("open_stdin")),
                tty=bool(data.get("tty")),
                console_size=_pair(data.get("console_size")),
            )
        )

    def delete_runtime_container(self, ctx: engine.Context, payload: Any) -> None:
        """Delete the runtime's task, if any, and container."""
        self.runtime.delete_task(_cid(ctx))
        self.runtime.delete(_cid(ctx))

    def task_create(self, ctx: engine.Context) -> dict[str, int]:
        """Create the task (its process exists, blocked until start)."""
        info = self.runtime.create_task(_cid(ctx))
        ctx.data["pid"] = info.pid
        return {"pid": info.pid}

    def force_delete_task(self, ctx: engine.Context, payload: Any) -> None:
        """Delete the task, killing it if it runs."""
        self.runtime.delete_task(_cid(ctx))

    def task_start(self, ctx: engine.Context) -> None:
        """Start the task and record the container running."""
        self.runtime.start_task(_cid(ctx))
        ctx.data.update(
            started_at=self.clock(),
            exit_code=0,
            error="",
            oom_killed=False,
            has_been_started_before=True,
            stopping=False,
            restarting=False,  # moby's SetRunning clears Restarting
            # The process's exit is recorded as caused by this transition (a span link).
            started_by=ctx.transition_id,
        )
        ctx.emit("start")
        if ctx.event == "restart":
            ctx.emit("restart")

    # -- running --------------------------------------------------------------------------

    def stop_signal(self, ctx: engine.Context) -> None:
        """Send the stop signal and schedule the kill after the stop timeout."""
        data, params = ctx.data, ctx.params
        stop = int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL)
        signal = moby.parse_signal(params.get("signal") or stop)
        timeout = self._send_stop(ctx, signal)
        if moby.ends(signal, stop, bool(data.get("stop_signal_set"))):
            data["exit_on_next"] = True
            if ctx.source.in_state("running.paused"):
                self._thaw(ctx)
        data["stopping"] = True
        if not params.get("shutdown"):
            data["manually_stopped"] = True
        if float(timeout) >= 0:
            ctx.schedule("stop_timeout", float(timeout))

    def _send_stop(self, ctx: engine.Context, signal: int) -> Any:
        """Send a stop's ``signal``; the seconds to wait for the exit before SIGKILL.

        The stop's timeout is the request's, else the container's, else moby's default.
        """
        timeout = ctx.params.get("timeout")
        if timeout is None:
            timeout = ctx.data.get("stop_timeout")
        if timeout is None:
            timeout = moby.DEFAULT_STOP_TIMEOUT
        try:
            self.runtime.kill(_cid(ctx), signal)
        except ChartdError:
            timeout = 2  # moby: when the signal cannot be sent, wait 2 s, then kill
        ctx.emit("kill", signal=str(signal))
        return timeout

    def task_kill(self, ctx: engine.Context) -> None:
        """SIGKILL the task (rm -f, or the stop timeout)."""
        try:
            self.runtime.kill(_cid(ctx), _SIGKILL)
        except Conflict:
            pass  # it exited meanwhile: its exit follows
        except ChartdError as exc:
            raise exc.wrap(f"Could not kill running container {_cid(ctx)}, cannot remove") from exc
        ctx.emit("kill", signal=str(_SIGKILL))

    def task_signal(self, ctx: engine.Context) -> None:
        """Send the signal a kill asks for (SIGKILL by default)."""
        data, params = ctx.data, ctx.params
        signal = moby.parse_signal(params.get("signal") or _SIGKILL)
        stop = int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL)
        try:
            self.runtime.kill(_cid(ctx), signal)
        except Conflict:
            pass  # moby: "no such process" is no error, the exit is on its way
        except ChartdError as exc:
            raise exc.wrap(f"Cannot kill container {_cid(ctx)}") from exc
        ctx.emit("kill", signal=str(signal))
        if moby.ends(signal, stop, bool(data.get("stop_signal_set"))):
            data["exit_on_next"] = True  # moby's ExitOnNext: no policy restarts it
            if ctx.source.in_state("running.paused"):
                self._thaw(ctx)
        if not params.get("shutdown"):
            data["manually_stopped"] = True  # moby sets it for any signal

    def task_stop(self, ctx: engine.Context) -> None:
        """Stop synchronously (restart): the signal, the timeout, then SIGKILL.

        The signal is the restart's ``signal`` param, else the container's stop
        signal. Its waits end when the operation's caller goes (DeadlineExceeded):
        the restart then fails, and the container keeps running.
        """
        stop = ctx.data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL
        signal = moby.parse_signal(ctx.params.get("signal") or stop)
        timeout = self._send_stop(ctx, signal)
        if ctx.source.in_state("running.paused"):
            self._thaw(ctx)
        if self._wait(_cid(ctx), float(timeout) if float(timeout) >= 0 else None) is None:
            with contextlib.suppress(Conflict):
                self.runtime.kill(_cid(ctx), _SIGKILL)
            ctx.emit("kill", signal=str(_SIGKILL))
            self._wait(_cid(ctx), 2.0)

    def _thaw(self, ctx: engine.Context) -> None:
        """Resume a paused container after an ending signal, as moby's kill does.

        The signal may have ended it already (SIGKILL acts on a frozen process,
        and so does any ending signal under the cgroup freezer): then there is
        nothing to thaw, and the container is not paused any more either way.
        """
        with contextlib.suppress(Conflict):
            self.runtime.resume(_cid(ctx))
        ctx.emit("unpause")

    def _wait(self, container_id: str, timeout: float | None) -> object | None:
        # The exit handler may have deleted the task already: that is an exit too.
        try:
            return calls.wait_for(
                lambda seconds: self.runtime.wait(container_id, seconds), timeout, calls.caller()
            )
        except NotFound:
            return True

    def task_pause(self, ctx: engine.Context) -> None:
        """Freeze the task."""
        self._freeze_or_thaw(ctx, self.runtime.pause, "pause")

    def task_unpause(self, ctx: engine.Context, payload: Any) -> None:
        """Thaw the task (the compensation of a pause)."""
        self.runtime.resume(_cid(ctx))

    def task_resume(self, ctx: engine.Context) -> None:
        """Thaw the task."""
        self._freeze_or_thaw(ctx, self.runtime.resume, "unpause")

    def _freeze_or_thaw(
        self, ctx: engine.Context, operation: Callable[[str], None], action: str
    ) -> None:
        """Pause or resume the task, then emit ``action`` (a System error if it failed)."""
        try:
            operation(_cid(ctx))
        except ChartdError as exc:
            raise System(f"cannot {action} container {_cid(ctx)}: {exc.message}") from exc
        ctx.emit(action)

    def cancel_restart(self, ctx: engine.Context) -> None:
        """Cancel a restarting container's pending retry."""
        ctx.cancel_timers("retry")
        ctx.data["restarting"] = False
        if ctx.event in ("stop", "restart"):
            ctx.emit("stop")  # moby's containerStop of a restarting container

    # -- exits ----------------------------------------------------------------------------

    def task_delete(self, ctx: engine.Context) -> None:
        """Delete the ended task and record its exit."""
        ended = self.runtime.delete_task(_cid(ctx))
        data, params = ctx.data, ctx.params
        code = params.get("exit_code")
        if code is None and ended is not None:
            code = ended.exit_code
        data["exit_code"] = int(code) if code is not None else data.get("exit_code", 0)
        data["finished_at"] = params.get("exited_at") or self.clock()
        data["pid"] = 0
        # Its execs (and a health probe) ended with it: no more probes until it runs again.
        data["exec_ids"] = []
        if data.get("health"):
            data["health"] = {**data["health"], "probe": None}
        ctx.cancel_timers("stop_timeout", "health_check")
        if ctx.event != "exit":
            # restart and rm -f end the process inside their own saga: its exit
            # reaches a container that moved on, so the monitor's `die` (and the
            # restart's `stop`) are emitted here, as moby emits them.
            self._die(ctx)
            if ctx.event == "restart":
                ctx.emit("stop")

    def cleanup(self, ctx: engine.Context) -> None:
        """Undo the start: runtime container, address, directories."""
        self.runtime.delete(_cid(ctx))
        self.pool.release(_cid(ctx))
        for folder in (self._run_dir(ctx), self._dir(ctx) / "mounts", self._dir(ctx) / "rootfs"):
            self.trash.discard(folder)
        ctx.data.pop("address", None)

    def _die(self, ctx: engine.Context) -> None:
        started = float(ctx.data.get("started_at") or 0)
        finished = float(ctx.data.get("finished_at") or self.clock())
        ctx.emit(
            "die",
            exitCode=str(ctx.data.get("exit_code", 0)),
            execDuration=str(max(0, int(finished - started))),
        )

    def schedule_retry(self, ctx: engine.Context) -> None:
        """Schedule the restart policy's next start, with moby's back-off."""
        data = ctx.data
        ran_for = float(data.get("finished_at") or 0) - float(data.get("started_at") or 0)
        delay = moby.backoff(float(data.get("restart_backoff") or 0), ran_for)
        data["restart_backoff"] = delay
        data["restart_count"] = int(data.get("restart_count") or 0) + 1
        data["restarting"] = True
        self._die(ctx)
        ctx.schedule("retry", delay)

    def record_exit(self, ctx: engine.Context) -> None:
        """Emit the exit's events; the container is neither stopping nor restarting."""
        self._die(ctx)
        if ctx.data.get("stopping"):
            ctx.emit("stop")
        ctx.data["stopping"] = False
        ctx.data["restarting"] = False

    # -- removal and renaming ---------------------------------------------------------------

    def release_layer(self, ctx: engine.Context) -> None:
        """Remove the root filesystem directory."""
        self.trash.discard(self._dir(ctx) / "rootfs")

    def remove_filesystem(self, ctx: engine.Context) -> None:
        """Remove the container's directory and the task's runtime directory."""
        folder = self._dir(ctx)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise System(f"unable to remove filesystem for {_cid(ctx)}: {exc}") from exc
        self.trash.discard(self._run_dir(ctx))

    def unregister(self, ctx: engine.Context) -> None:
        """Forget the container in the runtime and the address pool."""
        self.runtime.delete(_cid(ctx))
        self.pool.release(_cid(ctx))
        ctx.emit("destroy")

    def reserve_name(self, ctx: engine.Context) -> None:
        """Take the rename's new name."""
        new = moby.valid_name(str(ctx.params["new_name"]))
        old = ctx.data.get("name", "")
        ctx.data["name"] = new
        ctx.rename(new.lstrip("/"))
        ctx.emit("rename", oldName=str(old))
