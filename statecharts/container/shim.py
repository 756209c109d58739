"""The shim: the process a task is, blocked until start, then its command.

``spawn`` starts (``posix_spawn``, its own session, every signal disposition
at its default, no descriptor but 0 to 4) ``/bin/sh`` running a script of a
dozen lines, with fd 3 the read end of a *release* pipe and fd 4 the write
end of a *status* pipe, as stdout and stderr two FIFOs the daemon copies to
the json-file log (:mod:`~statecharts.container.logcopy`), as stdin
``/dev/null`` or (an open stdin) a FIFO the runtime writes (or, for a
TTY, a pseudo-terminal's slave as all three, :mod:`~statecharts.container.terminal`),
and the command's exact environment. The shim enters the working directory,
writes ``R`` on the status pipe and blocks reading the release pipe: the
process exists, with its final pid, but nothing of the command has run
(runc's ``create`` with its exec fifo). Before the release the runtime looks
the command up (:func:`exec_problem`: Go's ``LookPath`` rules, as runc; or,
for a path, what ``execve`` would say of it), because a shell whose exec
fails can only exit: if it cannot be run, the release tells the shim to exit
with moby's code (127, 126) and the start raises :func:`exec_error`'s error;
otherwise the shim ``exec``-s the command in place, so the pid does not
change, closing the status pipe on the way: the runtime reads EOF. There is
no timing guess anywhere. If the runtime goes away before the release, the
shim reads EOF and exits without running the command. A working directory
that cannot be entered fails the create before anything is spawned.

What the shell does not tell apart: a file that passes the look-up but that
the kernel still refuses (not a binary nor a script with ``#!``, a missing
ELF interpreter) starts, and exits at once with 126 or 127 and the shell's
message in the log, where runc fails the start; and a text file without
``#!`` is run by the shell as a script, as ``execvp`` would.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import stat
import time
from dataclasses import dataclass
from typing import Any

from engine.errors import ChartdError, DeadlineExceeded, System
from statecharts.container import logcopy, terminal
from statecharts.container.runtime import ContainerSpec, ExecFailed

__all__ = [
    "SH",
    "Shim",
    "await_ready",
    "close_fd",
    "cwd_errno",
    "exec_error",
    "exec_problem",
    "exit_code",
    "read_until_eof",
    "release",
    "spawn",
    "write_some",
]

# The shim is /bin/sh (dash, or any POSIX shell): about 1 ms to start, where a
# Python interpreter took 10 to 30. Its arguments: the working directory, the
# container's PWD and OLDPWD ("=value", or "-" when the spec has none: `cd`
# sets and exports both, and the environment must stay exactly the spec's),
# the path of its terminal's slave ("-" without one: opened again as stdin, it
# becomes the session's controlling terminal), then the command. Its
# environment is the command's. fd 3 is the release pipe, fd 4 the status
# pipe: it writes R once ready, then reads one line: G execs the command in
# place (the status pipe closes on the way), E<code> exits with that code (the
# command cannot be run), anything else or EOF exits 255 without running anything.
SH = "/bin/sh"
"""The shell that runs the shim."""

_SCRIPT = r"""
case $4 in /*) exec 0<>"$4" || exit 1;; esac
cd -- "$1" 2>/dev/null || { printf c >&4; exit 1; }
unset OLDPWD PWD
case $2 in =*) PWD=${2#=}; export PWD;; esac
case $3 in =*) OLDPWD=${3#=}; export OLDPWD;; esac
shift 4
printf R >&4
IFS= read -r go <&3
case $go in
G) ;;
E*) exit "${go#E}";;
*) exit 255;;
esac
exec 3<&-
exec "$@" 4>&-
"""
_SIGNALS = sorted(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


def close_fd(fd: int | None) -> None:
    """Close ``fd`` if there is one, whatever state it is in."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def write_some(fd: int, data: bytes, timeout: float) -> int:
    """Write a prefix of ``data`` to the non-blocking ``fd``: how much (0: no room within
    ``timeout`` seconds). BrokenPipeError once nobody reads it (its reader closed it)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    if not data or not poller.poll(timeout * 1000):
        return 0
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def _high_fd(fd: int) -> int:
    # posix_spawn's dup2 actions would clobber a source fd numbered 0..4.
    if fd >= 5:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
    os.close(fd)
    return high


def _inheritable_fds() -> list[int]:
    """This process's descriptors above 4 that a spawned process would inherit.

    Python opens everything close-on-exec; a C library may not. The shim is a
    shell, which cannot close what it does not know of, so the spawn does.
    """
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 4:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed now
                if os.get_inheritable(fd):
                    found.append(fd)
    return found


# -- what the exec would say -----------------------------------------------------------


def _reason(err: int) -> str:
    # Go's syscall error strings, which moby's exit-code mapping matches on.
    return os.strerror(err).lower()


def exec_error(record: dict[str, Any], spec: ContainerSpec) -> ChartdError:
    """The error (moby's message and exit code) of a failure record of :func:`exec_problem`."""
    stage, path, err = record.get("stage"), record.get("path"), int(record.get("errno", 0))
    arg0 = spec.cmd[0]
    code = exit_code(err)
    if stage == "chdir":
        message = f'chdir to cwd ("{path}") set in the container spec failed: {_reason(err)}'
    elif stage == "lookup":
        message = f'exec: "{arg0}": executable file not found in $PATH'
    elif err == errno.ENOENT:
        message = f'exec: "{arg0}": stat {path}: no such file or directory'
    else:
        message = f'exec: "{arg0}": {_reason(err)}'
    if err in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EISDIR):
        return ExecFailed(message, exit_code=code)
    return System(message)


def exit_code(err: int) -> int:
    """moby's exit code for a command that cannot be run with ``err`` (setExitCodeFromError)."""
    if err in (errno.ENOENT, errno.ENOTDIR):
        return 127
    return 126 if err in (errno.EACCES, errno.EISDIR) else 128


def cwd_errno(cwd: str) -> int | None:
    """The errno chdir to ``cwd`` would fail with, or None if it would succeed."""
    try:
        st = os.stat(cwd)
    except OSError as exc:
        return exc.errno
    if not stat.S_ISDIR(st.st_mode):
        return errno.ENOTDIR
    return None if os.access(cwd, os.X_OK) else errno.EACCES


def exec_problem(name: str, search: str, cwd: str) -> dict[str, Any] | None:
    """Why the command ``name`` cannot be run from ``cwd`` (a failure record), or None.

    A shell whose exec fails only exits 126 or 127: it cannot say why, so
    the runtime asks before the release, as the exec would answer: Go's
    LookPath rules (runc's) over ``search`` (the container's PATH, relative
    entries from ``cwd``) for a bare name, what execve says for a path.
    """
    if "/" not in name:
        for folder in search.split(":"):
            candidate = os.path.join(cwd, folder or ".", name)
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111 and os.access(candidate, os.X_OK):
                return None
        return {"stage": "lookup", "path": name, "errno": errno.ENOENT}
    target = os.path.join(cwd, name)
    try:
        st = os.stat(target)
    except OSError as exc:
        return {"stage": "exec", "path": name, "errno": exc.errno}
    if stat.S_ISDIR(st.st_mode):
        return {"stage": "exec", "path": name, "errno": errno.EISDIR}
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111 or not os.access(target, os.X_OK):
        return {"stage": "exec", "path": name, "errno": errno.EACCES}
    return None


# -- the shim's life -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shim:
    """A spawned shim: its pid, the runtime's ends of its two pipes and of an open stdin,
    and its terminal's master (a TTY's: the log copier reads it, ``stdin_w`` is a copy)."""

    pid: int
    release_w: int
    status_r: int
    stdin_w: int | None = None
    terminal: int | None = None


def _open_terminal(spec: ContainerSpec, fds: dict[str, int]) -> str:
    """Open, into ``fds``, a pseudo-terminal (``terminal``, the master; ``slave``) and
    the runtime's copy of the master for an open stdin; the slave's path."""
    fds["terminal"], slave, path = terminal.open_pty()
    fds["slave"] = _high_fd(slave)
    if spec.console_size is not None:
        terminal.set_window(fds["terminal"], *spec.console_size)
    if spec.open_stdin:
        fds["stdin_w"] = os.dup(fds["terminal"])
    return path


def _open_pipes(fds: dict[str, int]) -> None:
    """Open, into ``fds``, the release and the status pipes."""
    release_r, fds["release_w"] = os.pipe()
    fds["release_r"] = _high_fd(release_r)
    fds["status_r"], status_w = os.pipe()
    fds["status_w"] = _high_fd(status_w)


def _open_ends(spec: ContainerSpec, fds: dict[str, int]) -> None:
    """Open, into ``fds``, the output FIFOs and the stdin (each kept in ``fds``).

    An open stdin is the FIFO ``init-stdin``: the runtime's end (``stdin_w``) is
    opened first, read-write and non-blocking, so that opening the command's
    end does not wait and a write never meets a missing reader.
    """
    records = spec.root.resolve() / "runtime"
    logcopy.make_fifos(records)
    fds["stdout"] = _high_fd(logcopy.open_for_writer(records, "stdout"))
    fds["stderr"] = _high_fd(logcopy.open_for_writer(records, "stderr"))
    stdin = os.devnull
    if spec.open_stdin:
        stdin = str(logcopy.make_fifo(records, "stdin"))
        fds["stdin_w"] = os.open(stdin, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    fds["stdin"] = _high_fd(os.open(stdin, os.O_RDONLY | os.O_CLOEXEC))


def spawn(spec: ContainerSpec, cwd: str) -> Shim:
    """Spawn the shim of ``spec``'s command, to run in ``cwd`` once released."""
    env = spec.process_env()
    # The container's own PWD and OLDPWD, for the shim to put back after its cd.
    saved = [f"={env[name]}" if name in env else "-" for name in ("PWD", "OLDPWD")]
    fds: dict[str, int] = {}
    try:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        if spec.tty:
            tty = _open_terminal(spec, fds)
            streams = [fds["slave"]] * 3
        else:
            tty = "-"
            _open_ends(spec, fds)
            streams = [fds["stdin"], fds["stdout"], fds["stderr"]]
        _open_pipes(fds)
        pid = os.posix_spawn(
            SH,
            [SH, "-c", _SCRIPT, "chartd-shim", cwd, *saved, tty, *spec.cmd],
            env,
            file_actions=[
                *((os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(streams)),
                (os.POSIX_SPAWN_DUP2, fds["release_r"], 3),
                (os.POSIX_SPAWN_DUP2, fds["status_w"], 4),
                *((os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()),
            ],
            setsid=True,
            setsigmask=(),
            # Every disposition back to its default: an ignored one would
            # survive both execs (a shell cannot reset what it inherited ignored).
            setsigdef=_SIGNALS,
        )
    except OSError as exc:
        for fd in fds.values():
            close_fd(fd)
        raise System(f"cannot create task {spec.id}: {exc}") from exc
    for name in ("stdout", "stderr", "stdin", "slave", "release_r", "status_w"):
        close_fd(fds.get(name))
    return Shim(
        pid=pid,
        release_w=fds["release_w"],
        status_r=fds["status_r"],
        stdin_w=fds.get("stdin_w"),
        terminal=fds.get("terminal"),
    )


def _readable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def await_ready(status_r: int, spec: ContainerSpec, cwd: str, timeout: float) -> None:
    """Wait until the shim says it is ready (``R``); raise what went wrong otherwise."""
    first = os.read(status_r, 1) if _readable(status_r, timeout) else None
    if first == b"c":  # its cd failed after all (the directory changed meanwhile)
        err = cwd_errno(cwd) or errno.ENOENT
        raise exec_error({"stage": "chdir", "path": cwd, "errno": err}, spec)
    if first is None:
        raise DeadlineExceeded(
            f"cannot create task {spec.id}: its process was not ready within {timeout}s"
        )
    if first != b"R":
        raise System(
            f"cannot create task {spec.id}: its process exited before it was ready"
            f" (see {spec.log_path})"
        )


def release(release_w: int, problem: dict[str, Any] | None) -> None:
    """Tell the shim to exec its command (no ``problem``) or to exit with moby's code; close."""
    order = b"G\n" if problem is None else f"E{exit_code(problem['errno'])}\n".encode()
    with contextlib.suppress(BrokenPipeError):  # the shim is gone; its exit says why
        os.write(release_w, order)
    close_fd(release_w)


def read_until_eof(fd: int, timeout: float) -> bytes:
    """Everything written on the pipe ``fd`` until EOF (every writer closed or exec'd)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise DeadlineExceeded(f"the task process did not exec within {timeout}s")
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
