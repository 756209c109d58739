"""Engine processes of the replica tests, each running ``worker.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0  # a process that takes longer has hung: fail rather than hang CI


class Worker:
    """One engine process running ``worker.py``; its JSON lines read one at a time."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *_path()])},
        )

    def line(self) -> Any:
        """The worker's next JSON line (it printed it once its part was done)."""
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline()
        assert text, f"worker exited ({self.proc.wait(WAIT)}) before printing"
        return json.loads(text)

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(WAIT)


def _path() -> list[str]:
    path = os.environ.get("PYTHONPATH", "")
    return [p for p in path.split(os.pathsep) if p]
