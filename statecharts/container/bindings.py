"""The code behind the container chart's names: guards, saga steps, conditions.

The guards are :mod:`statecharts.container.guards`, the steps the methods of
:class:`~statecharts.container.steps.ContainerSteps`, the conditions
:mod:`statecharts.container.conditions`; this module pairs them with the
chart's names, and gives the start saga's steps moby's exit codes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine
from engine.errors import ChartdError, System
from statecharts.container import health
from statecharts.container.conditions import CONDITIONS
from statecharts.container.execs import exec_steps
from statecharts.container.guards import (
    checkpoint_allowed,
    current_task,
    new_name_valid,
    settings_valid,
    valid_signal,
)
from statecharts.container.network import AddressPool
from statecharts.container.runtime import ExecFailed, Runtime, exit_code_from_start_error
from statecharts.container.steps import ContainerSteps, container_dir, log_path
from statecharts.container.updates import resized, update_allowed, update_config

__all__ = ["container_bindings", "container_dir", "log_path"]


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


def _nothing(ctx: engine.Context) -> None:
    return None


def _nothing_to_undo(ctx: engine.Context, payload: Any) -> None:
    return None


class _NoProbes:
    """A prober that runs nothing (a service without one never reports a result)."""

    def start(self, container_id: str, probe_id: str, cmd: list[str], timeout: float) -> None:
        return None

    def cancel(self, container_id: str, probe_id: str) -> None:
        return None


def container_bindings(
    runtime: Runtime,
    pool: AddressPool,
    root: Path,
    *,
    clock: Callable[[], float],
    prober: health.Prober | None = None,
) -> engine.Bindings:
    """The guards, steps and conditions of the container chart, on ``runtime``.

    ``prober`` runs the health probes (none without one).
    """
    saga = ContainerSteps(runtime, pool, root, clock)
    probing = health.HealthSteps(prober or _NoProbes())
    step, start, undone = engine.Step, _start_step, _nothing_to_undo
    return engine.Bindings(
        guards={
            "checkpoint_allowed": checkpoint_allowed,
            "settings_valid": settings_valid,
            "valid_signal": valid_signal,
            "current_task": current_task,
            "new_name_valid": new_name_valid,
            "current_probe": probing.current_probe,
            "update_allowed": update_allowed,
        },
        steps={
            "mount_rootfs": step(start(saga.mount_rootfs), saga.unmount_rootfs),
            "network_sandbox": step(start(saga.network_sandbox), saga.delete_sandbox),
            "container_dirs": step(start(saga.container_dirs), saga.remove_dirs),
            "mounts": step(start(saga.mounts), saga.unmount),
            "spec": step(start(saga.spec), saga.remove_spec),
            "reset_restart_manager": step(saga.reset_restart_manager, external=False),
            "runtime_container": step(start(saga.runtime_container), saga.delete_runtime_container),
            "task_create": step(start(saga.task_create), saga.force_delete_task),
            "task_start": step(start(saga.task_start), saga.force_delete_task),
            "stop_signal": step(saga.stop_signal, undone, write_ahead=False),
            "task_kill": step(saga.task_kill, undone, write_ahead=False),
            "task_signal": step(saga.task_signal, undone, write_ahead=False),
            "task_stop": step(saga.task_stop, undone),
            "task_pause": step(saga.task_pause, saga.task_unpause),
            "task_resume": step(saga.task_resume, undone),
            "cancel_restart": step(saga.cancel_restart, external=False),
            "task_delete": step(saga.task_delete, undone, write_ahead=False),
            "cleanup": step(saga.cleanup, undone, write_ahead=False),
            "schedule_retry": step(saga.schedule_retry, external=False),
            "record_exit": step(saga.record_exit, external=False),
            "release_layer": step(saga.release_layer, undone),
            "remove_filesystem": step(saga.remove_filesystem, undone),
            "unregister": step(saga.unregister, undone),
            "reserve_name": step(saga.reserve_name, external=False),
            "rename_endpoints": step(_nothing, external=False),
            "release_old_name": step(_nothing, external=False),
            "health_reset": step(probing.health_reset, external=False),
            "probe_start": step(probing.probe_start, probing.cancel_probe),
            "record_probe": step(probing.record_probe, external=False),
            "health_stop": step(probing.health_stop, external=False),
            "health_resume": step(probing.health_resume, external=False),
            **exec_steps(),
            "update_config": step(update_config, external=False),
            "resized": step(resized, external=False),
        },
        conditions={**CONDITIONS, **health.CONDITIONS},
    )
