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
from typing import TypedDict

from engine.errors import ChartdError, System
from statecharts.container import shim, terminal
from statecharts.container.runtime import ContainerSpec, ExecFailed

__all__ = ["ExecHow", "ExecProcesses", "exec_failure"]

# docker's wording around the runtime's reason, for an exec that cannot start.
_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "
# The shell enters the cgroup ($0; its own pid, as "0") and opens its terminal ($1: as
# the session's leader, it becomes its controlling one) before it becomes the command.
_ENTER = (
    'case $0 in -) ;; *) echo 0 > "$0/cgroup.procs" || exit 126;; esac;'
    ' case $1 in -) ;; *) exec 0<>"$1" || exit 126;; esac; shift; exec "$@"'
)


def exec_failure(error: ChartdError) -> ChartdError:
    """``error`` (a failed exec's) with docker's wording around it, its exit code kept."""
    code = getattr(error, "exit_code", 126)
    if isinstance(error, ExecFailed):
        return ExecFailed(f"{_PREFIX}{error.message}: unknown", exit_code=code)
    failed = System(f"{_PREFIX}{error.message}: unknown")
    failed.exit_code = 126  # type: ignore[attr-defined]
    return failed


class ExecHow(TypedDict, total=False):
    """How an exec's process is wired: its stdin, its terminal (:meth:`ExecProcesses.spawn`)."""

    stdin: bool
    tty: bool
    console_size: tuple[int, int] | None


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
        tty: bool = False,
        console_size: tuple[int, int] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in ``spec``'s container; stdout and stderr piped when ``attach``,
        and its stdin (``docker exec -i``, non-blocking on our side) when ``stdin``.

        With ``tty`` (and ``attach``: ``docker exec -t``), its stdin, stdout and
        stderr are a new pseudo-terminal, its controlling one: ``process.stdout``
        reads the master (all the process writes, OSError EIO at its end) and
        ``process.stdin`` (with ``stdin``) writes it; ``process.stderr`` is None.
        Its window is ``console_size`` (height, width) from the start, if given.

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
        master = path = None
        try:
            if tty and attach:
                master, slave, path = terminal.open_pty()
                if console_size is not None:
                    terminal.set_window(master, *console_size)
                ends: tuple[int, int] = (slave, slave)
            else:
                out = subprocess.PIPE if attach else subprocess.DEVNULL
                ends, slave = (out, out), subprocess.PIPE if stdin else subprocess.DEVNULL
            wrapped = cgroup is not None or path is not None
            args = [shim.SH, "-c", _ENTER, str(cgroup or "-"), path or "-"] if wrapped else []
            process = subprocess.Popen(
                [*args, *run.cmd],
                cwd=cwd,
                env=run.process_env(),
                stdin=slave,
                stdout=ends[0],
                stderr=ends[1],
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            shim.close_fd(master)
            raise exec_failure(System(str(exc))) from exc
        finally:
            if master is not None:
                shim.close_fd(slave)
        if master is not None:
            process.stdout = open(master, "rb")  # noqa: SIM115 - the process's output, read on
            process.stdin = open(os.dup(master), "wb", buffering=0) if stdin else None  # noqa: SIM115
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
