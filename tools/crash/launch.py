"""Starting children: forked by a zygote per worker, or each a fresh interpreter (``--exec``).

Either way a child is ``tools/crash_harness.py`` run with a hidden option
(``--zygote`` or ``--child SPEC``), so that it imports the harness as the
parent does.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "crash_harness.py"
CHILD_TIMEOUT = 60.0


class Launched:
    """A running child: its pid, and how to wait for its exit status."""

    def __init__(self, pid: int, wait: Callable[[float], int | None]) -> None:
        self.pid = pid
        self._wait = wait

    def wait(self, timeout: float) -> int | None:
        """The exit code (negative: the signal), or None if it hung and was killed."""
        return self._wait(timeout)

    def kill(self) -> None:
        """SIGKILL the child."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


class ExecLauncher:
    """Each child is a fresh ``python tools/crash_harness.py --child SPEC``."""

    def start(self, spec: Mapping[str, Any], log: Path) -> Launched:
        """Start a child running ``spec``, its output in ``log``."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), "--child", json.dumps(dict(spec))],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=REPO,
            )

        def wait(timeout: float) -> int | None:
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return None

        return Launched(proc.pid, wait)

    def close(self) -> None:
        """Nothing to release."""


class ZygoteLauncher:
    """Each child is forked by a zygote: ``python tools/crash_harness.py --zygote``.

    The zygote has imported the engine and done nothing else (no thread, no
    database), so its forks start in milliseconds instead of the half second
    an interpreter takes to import SQLAlchemy, Alembic and pydantic. It runs
    one child at a time and reports the child's pid, then its exit status.
    """

    def __init__(self, log: Path) -> None:
        with log.open("ab") as err:
            self._proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), "--zygote"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=REPO,
            )
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(json.loads(line))
        self._lines.put({"eof": True})

    def _next(self, timeout: float) -> dict[str, Any]:
        message = self._lines.get(timeout=timeout)
        if "eof" in message:
            raise RuntimeError("the zygote died")
        return message

    def start(self, spec: Mapping[str, Any], log: Path) -> Launched:
        """Fork a child running ``spec``, its output in ``log``."""
        assert self._proc.stdin is not None
        request = json.dumps({"spec": dict(spec), "log": str(log)}) + "\n"
        self._proc.stdin.write(request.encode())
        self._proc.stdin.flush()
        pid = int(self._next(CHILD_TIMEOUT)["pid"])

        def wait(timeout: float) -> int | None:
            try:
                return int(self._next(timeout)["exit"])
            except queue.Empty:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._next(CHILD_TIMEOUT)
                return None

        return Launched(pid, wait)

    def close(self) -> None:
        """Stop the zygote."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=CHILD_TIMEOUT)


Launcher = ExecLauncher | ZygoteLauncher
