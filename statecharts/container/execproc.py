"""Exec processes: other processes in a running container (``docker exec``), on the host.

A container's exec runs with the container's environment (the exec's own
variables over it), its working directory unless the exec names one, in the
container's cgroup when the runtime uses cgroups (so the freezer freezes it
and ``cgroup.kill`` ends it with the container), and in a session of its own.
:class:`ExecProcesses` keeps the live ones per container so that the
runtime ends them when the container's main process exits (without cgroups
nothing else would: they are not in the container's process group).

A command that cannot be run fails before anything is spawned, with moby's
message and exit code (127 not found, 126 not runnable), as
:func:`statecharts.container.shim.exec_problem` tells.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.errors import ChartdError, System
from statecharts.container import shim
from statecharts.container.runtime import ContainerSpec, ExecFailed

__all__ = ["ExecProcesses", "exec_failure"]

# docker's wording around the runtime's reason, for an exec that cannot start.
_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "
# The shell enters the cgroup (its own pid, as "0") before it becomes the command.
_ENTER = 'echo 0 > "$0/cgroup.procs" || exit 126; exec "$@"'


def exec_failure(error: ChartdError) -> ChartdError:
    """``error`` (a failed exec's) with docker's wording around it, its exit code kept."""
    code = getattr(error, "exit_code", 126)
    if isinstance(error, ExecFailed):
        return ExecFailed(f"{_PREFIX}{error.message}: unknown", exit_code=code)
    failed = System(f"{_PREFIX}{error.message}: unknown")
    failed.exit_code = 126  # type: ignore[attr-defined]
    return failed


class ExecProcesses:
    """The live exec processes of each container, spawned and ended together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, set[subprocess.Popen[bytes]]] = {}

    def spawn(
        self,
        spec: ContainerSpec,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        working_dir: str | None,
        cgroup: Path | None,
        attach: bool,
        stdin: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in ``spec``'s container; stdout and stderr piped when ``attach``,
        and its stdin (``docker exec -i``, non-blocking on our side) when ``stdin``.

        ExecFailed (126/127) when it cannot be run, with docker's message.
        """
        run = dataclasses.replace(
            spec,
            cmd=list(cmd),
            env={**spec.env, **env},
            working_dir=working_dir or spec.working_dir,
        )
        cwd = run.working_dir or "/"
        err = shim.cwd_errno(cwd)
        problem = (
            {"stage": "chdir", "path": cwd, "errno": err}
            if err is not None
            else shim.exec_problem(run.cmd[0], run.process_env()["PATH"], cwd)
        )
        if problem is not None:
            raise exec_failure(shim.exec_error(problem, run)) from None
        args = [shim.SH, "-c", _ENTER, str(cgroup), *run.cmd] if cgroup else run.cmd
        out = subprocess.PIPE if attach else subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                args,
                cwd=cwd,
                env=run.process_env(),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise exec_failure(System(str(exc))) from exc
        if process.stdin is not None:
            os.set_blocking(process.stdin.fileno(), False)
        with self._lock:
            self._live.setdefault(spec.id, set()).add(process)
        return process

    def ended(self, container_id: str, process: subprocess.Popen[bytes]) -> None:
        """Forget ``process`` (it was reaped)."""
        with self._lock:
            live = self._live.get(container_id)
            if live is not None:
                live.discard(process)
                if not live:
                    del self._live[container_id]

    def kill_all(self, container_id: str) -> None:
        """SIGKILL every exec of the container (its main process exited)."""
        with self._lock:
            live = list(self._live.get(container_id, ()))
        for process in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL one exec and whatever it started in its session."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
