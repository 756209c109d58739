"""The code behind the container chart's names: guards, saga steps, conditions.

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
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal as _signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine
from engine.errors import (
    ChartdError,
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotModified,
    System,
)
from statecharts.container import moby
from statecharts.container.conditions import CONDITIONS
from statecharts.container.network import AddressPool
from statecharts.container.runtime import (
    ContainerSpec,
    ExecFailed,
    Runtime,
    exit_code_from_start_error,
)

__all__ = ["container_bindings", "container_dir", "log_path"]

_SIGKILL = int(_signal.SIGKILL)


def container_dir(root: Path, container_id: str) -> Path:
    """The directory of one container under the state root."""
    return root / "containers" / container_id


def log_path(root: Path, container_id: str) -> Path:
    """Where the container's stdout and stderr go (moby's json-file path, plain text here)."""
    return container_dir(root, container_id) / f"{container_id}-json.log"


def _run_dir(root: Path, container_id: str) -> Path:
    return root / "run" / container_id


def _start_step(fn: Callable[[engine.Context], Any]) -> Callable[[engine.Context], Any]:
    """Give a start-saga error the exit code moby records.

    126 or 127 when the command cannot be run (``setExitCodeFromError``);
    otherwise the container keeps the exit code it has, and 128 only if that
    is 0 (moby's outer handler in ``containerStart``: "if no one else has set
    it, make sure we don't leave it at zero").
    """

    def do(ctx: engine.Context) -> Any:
        try:
            return fn(ctx)
        except Exception as exc:
            error = exc if isinstance(exc, ChartdError) else System(f"{type(exc).__name__}: {exc}")
            code = exit_code_from_start_error(exc)
            if not isinstance(exc, ExecFailed):
                code = int(ctx.data.get("exit_code") or 0) or code
            error.exit_code = code  # type: ignore[attr-defined]
            raise error from exc

    do.__name__ = fn.__name__
    return do


def container_bindings(
    runtime: Runtime, pool: AddressPool, root: Path, *, clock: Callable[[], float]
) -> engine.Bindings:
    """The guards, steps and conditions of the container chart, on ``runtime``."""

    def cid(ctx: engine.Context) -> str:
        return ctx.entity_id

    # -- guards ----------------------------------------------------------------

    def checkpoint_allowed(ctx: engine.Context) -> None:
        if ctx.params.get("checkpoint"):
            raise InvalidParameter("checkpoint is only supported in experimental mode")
        if ctx.params.get("checkpoint_dir"):
            raise Forbidden("custom checkpointdir is not supported")

    def settings_valid(ctx: engine.Context) -> None:
        moby.parse_restart_policy(_policy_text(ctx.source.data.get("restart_policy")))
        working_dir = ctx.source.data.get("working_dir")
        if working_dir and not Path(working_dir).is_absolute():
            raise InvalidParameter(
                f"the working directory '{working_dir}' is invalid, it needs to be an absolute path"
            )

    def valid_signal(ctx: engine.Context) -> None:
        if ctx.params.get("signal") not in (None, ""):
            moby.parse_signal(ctx.params["signal"])

    def current_task(ctx: engine.Context) -> None:
        pid = ctx.params.get("pid")
        if pid is not None and pid != ctx.source.data.get("pid"):
            raise NotModified(f"exit of process {pid} is not the current task of {ctx.entity_id}")

    def new_name_valid(ctx: engine.Context) -> None:
        new = ctx.params.get("new_name")
        old = ctx.source.data.get("name", "")
        if not new or not old:
            raise InvalidParameter("Neither old nor new names may be empty")
        canonical = moby.valid_name(str(new))
        if canonical == old:
            raise InvalidParameter("Renaming a container with the same name as its current name")

    # -- the start saga ---------------------------------------------------------

    def mount_rootfs(ctx: engine.Context) -> dict[str, str]:
        rootfs = container_dir(root, cid(ctx)) / "rootfs"
        rootfs.mkdir(parents=True, exist_ok=True)
        return {"rootfs": str(rootfs)}

    def unmount_rootfs(ctx: engine.Context, payload: Any) -> None:
        shutil.rmtree(container_dir(root, cid(ctx)) / "rootfs", ignore_errors=True)

    def network_sandbox(ctx: engine.Context) -> dict[str, str]:
        try:
            address = pool.allocate(cid(ctx))
        except ChartdError as exc:
            raise exc.wrap("failed to set up container networking") from exc
        ctx.data["address"] = address
        return {"address": address}

    def delete_sandbox(ctx: engine.Context, payload: Any) -> None:
        pool.release(cid(ctx))

    def container_dirs(ctx: engine.Context) -> None:
        _run_dir(root, cid(ctx)).mkdir(parents=True, exist_ok=True)
        log_path(root, cid(ctx)).parent.mkdir(parents=True, exist_ok=True)

    def remove_dirs(ctx: engine.Context, payload: Any) -> None:
        shutil.rmtree(_run_dir(root, cid(ctx)), ignore_errors=True)

    def mounts(ctx: engine.Context) -> None:
        folder = container_dir(root, cid(ctx)) / "mounts"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hostname").write_text(cid(ctx)[:12] + "\n")
        address = ctx.data.get("address", "127.0.0.1")
        (folder / "hosts").write_text(f"127.0.0.1\tlocalhost\n{address}\t{cid(ctx)[:12]}\n")

    def unmount(ctx: engine.Context, payload: Any) -> None:
        shutil.rmtree(container_dir(root, cid(ctx)) / "mounts", ignore_errors=True)

    def spec(ctx: engine.Context) -> None:
        data = ctx.data
        document = {
            "process": {
                "args": list(data.get("cmd") or []),
                "env": [f"{k}={v}" for k, v in sorted((data.get("env") or {}).items())],
                "cwd": data.get("working_dir") or "/",
            },
            "hostname": cid(ctx)[:12],
            "annotations": dict(data.get("labels") or {}),
        }
        try:
            (_run_dir(root, cid(ctx)) / "config.json").write_text(json.dumps(document, indent=2))
        except OSError as exc:
            # A spec that cannot be made is the daemon's fault, not the request's.
            raise System(f"cannot write the container spec: {exc}") from exc

    def remove_spec(ctx: engine.Context, payload: Any) -> None:
        (_run_dir(root, cid(ctx)) / "config.json").unlink(missing_ok=True)

    def reset_restart_manager(ctx: engine.Context) -> None:
        ctx.data.update(
            restart_count=0, manually_stopped=False, exit_on_next=False, restart_backoff=0.0
        )

    def runtime_container(ctx: engine.Context) -> None:
        data = ctx.data
        runtime.create(
            ContainerSpec(
                id=cid(ctx),
                name=str(data.get("name", "")),
                cmd=list(data.get("cmd") or []),
                env=dict(data.get("env") or {}),
                working_dir=data.get("working_dir"),
                stop_signal=int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL),
                labels=dict(data.get("labels") or {}),
                log_path=log_path(root, cid(ctx)),
                root=_run_dir(root, cid(ctx)),
            )
        )

    def delete_runtime_container(ctx: engine.Context, payload: Any) -> None:
        runtime.delete_task(cid(ctx))
        runtime.delete(cid(ctx))

    def task_create(ctx: engine.Context) -> dict[str, int]:
        info = runtime.create_task(cid(ctx))
        ctx.data["pid"] = info.pid
        return {"pid": info.pid}

    def force_delete_task(ctx: engine.Context, payload: Any) -> None:
        runtime.delete_task(cid(ctx))

    def task_start(ctx: engine.Context) -> None:
        runtime.start_task(cid(ctx))
        ctx.data.update(
            started_at=clock(),
            exit_code=0,
            error="",
            oom_killed=False,
            has_been_started_before=True,
            stopping=False,
            restarting=False,  # moby's SetRunning clears Restarting
        )
        ctx.emit("start")
        if ctx.event == "restart":
            ctx.emit("restart")

    # -- running -----------------------------------------------------------------

    def stop_signal(ctx: engine.Context) -> None:
        data, params = ctx.data, ctx.params
        stop = int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL)
        signal = moby.parse_signal(params.get("signal") or stop)
        timeout = params.get("timeout")
        if timeout is None:
            timeout = data.get("stop_timeout")
        if timeout is None:
            timeout = moby.DEFAULT_STOP_TIMEOUT
        try:
            runtime.kill(cid(ctx), signal)
        except ChartdError:
            timeout = 2  # moby: when the signal cannot be sent, wait 2 s, then kill
        ctx.emit("kill", signal=str(signal))
        if moby.ends(signal, stop, bool(data.get("stop_signal_set"))):
            data["exit_on_next"] = True
            if ctx.source.in_state("running.paused"):
                _thaw(ctx)
        data["stopping"] = True
        if not params.get("shutdown"):
            data["manually_stopped"] = True
        if float(timeout) >= 0:
            ctx.schedule("stop_timeout", float(timeout))

    def task_kill(ctx: engine.Context) -> None:
        try:
            runtime.kill(cid(ctx), _SIGKILL)
        except Conflict:
            pass  # it exited meanwhile: its exit follows
        except ChartdError as exc:
            raise exc.wrap(f"Could not kill running container {cid(ctx)}, cannot remove") from exc
        ctx.emit("kill", signal=str(_SIGKILL))

    def task_signal(ctx: engine.Context) -> None:
        data, params = ctx.data, ctx.params
        signal = moby.parse_signal(params.get("signal") or _SIGKILL)
        stop = int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL)
        try:
            runtime.kill(cid(ctx), signal)
        except Conflict:
            pass  # moby: "no such process" is no error, the exit is on its way
        except ChartdError as exc:
            raise exc.wrap(f"Cannot kill container {cid(ctx)}") from exc
        ctx.emit("kill", signal=str(signal))
        if moby.ends(signal, stop, bool(data.get("stop_signal_set"))):
            data["exit_on_next"] = True  # moby's ExitOnNext: no policy restarts it
            if ctx.source.in_state("running.paused"):
                _thaw(ctx)
        if not params.get("shutdown"):
            data["manually_stopped"] = True  # moby sets it for any signal

    def task_stop(ctx: engine.Context) -> None:
        """Stop synchronously (restart): the stop signal, the timeout, then SIGKILL."""
        data, params = ctx.data, ctx.params
        signal = int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL)
        timeout = params.get("timeout")
        if timeout is None:
            timeout = data.get("stop_timeout")
        if timeout is None:
            timeout = moby.DEFAULT_STOP_TIMEOUT
        try:
            runtime.kill(cid(ctx), signal)
        except ChartdError:
            timeout = 2  # moby: when the signal cannot be sent, wait 2 s, then kill
        ctx.emit("kill", signal=str(signal))
        if ctx.source.in_state("running.paused"):
            _thaw(ctx)
        if _wait(cid(ctx), float(timeout) if float(timeout) >= 0 else None) is None:
            with contextlib.suppress(Conflict):
                runtime.kill(cid(ctx), _SIGKILL)
            ctx.emit("kill", signal=str(_SIGKILL))
            _wait(cid(ctx), 2.0)

    def _thaw(ctx: engine.Context) -> None:
        """Resume a paused container after an ending signal, as moby's kill does.

        The signal may have ended it already (SIGKILL acts on a frozen process,
        and so does any ending signal under the cgroup freezer): then there is
        nothing to thaw, and the container is not paused any more either way.
        """
        with contextlib.suppress(Conflict):
            runtime.resume(cid(ctx))
        ctx.emit("unpause")

    def _wait(container_id: str, timeout: float | None) -> object | None:
        # The exit handler may have deleted the task already: that is an exit too.
        try:
            return runtime.wait(container_id, timeout)
        except NotFound:
            return True

    def task_pause(ctx: engine.Context) -> None:
        try:
            runtime.pause(cid(ctx))
        except ChartdError as exc:
            raise System(f"cannot pause container {cid(ctx)}: {exc.message}") from exc
        ctx.emit("pause")

    def task_resume(ctx: engine.Context) -> None:
        try:
            runtime.resume(cid(ctx))
        except ChartdError as exc:
            raise System(f"cannot unpause container {cid(ctx)}: {exc.message}") from exc
        ctx.emit("unpause")

    def cancel_restart(ctx: engine.Context) -> None:
        ctx.cancel_timers("retry")
        ctx.data["restarting"] = False
        if ctx.event in ("stop", "restart"):
            ctx.emit("stop")  # moby's containerStop of a restarting container

    # -- exits ---------------------------------------------------------------------

    def task_delete(ctx: engine.Context) -> None:
        ended = runtime.delete_task(cid(ctx))
        data, params = ctx.data, ctx.params
        code = params.get("exit_code")
        if code is None and ended is not None:
            code = ended.exit_code
        data["exit_code"] = int(code) if code is not None else data.get("exit_code", 0)
        data["finished_at"] = params.get("exited_at") or clock()
        data["pid"] = 0
        ctx.cancel_timers("stop_timeout")
        if ctx.event != "exit":
            # restart and rm -f end the process inside their own saga: its exit
            # reaches a container that moved on, so the monitor's `die` (and the
            # restart's `stop`) are emitted here, as moby emits them.
            _die(ctx)
            if ctx.event == "restart":
                ctx.emit("stop")

    def cleanup(ctx: engine.Context) -> None:
        runtime.delete(cid(ctx))
        pool.release(cid(ctx))
        shutil.rmtree(_run_dir(root, cid(ctx)), ignore_errors=True)
        shutil.rmtree(container_dir(root, cid(ctx)) / "mounts", ignore_errors=True)
        shutil.rmtree(container_dir(root, cid(ctx)) / "rootfs", ignore_errors=True)
        ctx.data.pop("address", None)

    def _die(ctx: engine.Context) -> None:
        started = float(ctx.data.get("started_at") or 0)
        finished = float(ctx.data.get("finished_at") or clock())
        ctx.emit(
            "die",
            exitCode=str(ctx.data.get("exit_code", 0)),
            execDuration=str(max(0, int(finished - started))),
        )

    def schedule_retry(ctx: engine.Context) -> None:
        data = ctx.data
        ran_for = float(data.get("finished_at") or 0) - float(data.get("started_at") or 0)
        delay = moby.backoff(float(data.get("restart_backoff") or 0), ran_for)
        data["restart_backoff"] = delay
        data["restart_count"] = int(data.get("restart_count") or 0) + 1
        data["restarting"] = True
        _die(ctx)
        ctx.schedule("retry", delay)

    def record_exit(ctx: engine.Context) -> None:
        _die(ctx)
        if ctx.data.get("stopping"):
            ctx.emit("stop")
        ctx.data["stopping"] = False
        ctx.data["restarting"] = False

    # -- removal and renaming ---------------------------------------------------------

    def release_layer(ctx: engine.Context) -> None:
        shutil.rmtree(container_dir(root, cid(ctx)) / "rootfs", ignore_errors=True)

    def remove_filesystem(ctx: engine.Context) -> None:
        folder = container_dir(root, cid(ctx))
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise System(f"unable to remove filesystem for {cid(ctx)}: {exc}") from exc
        shutil.rmtree(_run_dir(root, cid(ctx)), ignore_errors=True)

    def unregister(ctx: engine.Context) -> None:
        runtime.delete(cid(ctx))
        pool.release(cid(ctx))
        ctx.emit("destroy")

    def reserve_name(ctx: engine.Context) -> None:
        new = moby.valid_name(str(ctx.params["new_name"]))
        old = ctx.data.get("name", "")
        ctx.data["name"] = new
        ctx.rename(new.lstrip("/"))
        ctx.emit("rename", oldName=str(old))

    def nothing(ctx: engine.Context) -> None:
        return None

    def nothing_to_undo(ctx: engine.Context, payload: Any) -> None:
        return None

    step = engine.Step
    start = _start_step
    return engine.Bindings(
        guards={
            "checkpoint_allowed": checkpoint_allowed,
            "settings_valid": settings_valid,
            "valid_signal": valid_signal,
            "current_task": current_task,
            "new_name_valid": new_name_valid,
        },
        steps={
            "mount_rootfs": step(start(mount_rootfs), unmount_rootfs),
            "network_sandbox": step(start(network_sandbox), delete_sandbox),
            "container_dirs": step(start(container_dirs), remove_dirs),
            "mounts": step(start(mounts), unmount),
            "spec": step(start(spec), remove_spec),
            "reset_restart_manager": step(reset_restart_manager, external=False),
            "runtime_container": step(start(runtime_container), delete_runtime_container),
            "task_create": step(start(task_create), force_delete_task),
            "task_start": step(start(task_start), force_delete_task),
            "stop_signal": step(stop_signal, nothing_to_undo),
            "task_kill": step(task_kill, nothing_to_undo),
            "task_signal": step(task_signal, nothing_to_undo),
            "task_stop": step(task_stop, nothing_to_undo),
            "task_pause": step(task_pause, lambda ctx, payload: runtime.resume(cid(ctx))),
            "task_resume": step(task_resume, nothing_to_undo),
            "cancel_restart": step(cancel_restart, external=False),
            "task_delete": step(task_delete, nothing_to_undo),
            "cleanup": step(cleanup, nothing_to_undo),
            "schedule_retry": step(schedule_retry, external=False),
            "record_exit": step(record_exit, external=False),
            "release_layer": step(release_layer, nothing_to_undo),
            "remove_filesystem": step(remove_filesystem, nothing_to_undo),
            "unregister": step(unregister, nothing_to_undo),
            "reserve_name": step(reserve_name, external=False),
            "rename_endpoints": step(nothing, external=False),
            "release_old_name": step(nothing, external=False),
        },
        conditions=CONDITIONS,
    )


def _policy_text(data: Any) -> str:
    policy = moby.RestartPolicy.from_data(data)
    if policy.name == "on-failure" and policy.maximum_retry_count:
        return f"on-failure:{policy.maximum_retry_count}"
    return policy.name
