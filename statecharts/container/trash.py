"""Trash: directories taken off their paths by a rename, deleted in the background.

Every exit removes the directories its start made (the root filesystem, the
mounts, the task's runtime directory and records). Removing a directory can
cost far more than making one: on ext4 mounted with ``discard``, on a
machine busy with other syncs, an ``rmdir`` took 2 to 4 ms where a ``mkdir``
or a ``rename`` took under 0.1. So a directory is renamed into the trash, a
folder on the same file system, which takes it off its path at once, and a
thread of the trash deletes it afterwards. What a daemon that crashed left
in the trash is deleted by the next one. A path that cannot be renamed into
the trash (another file system) is deleted in place.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import threading
from pathlib import Path

__all__ = ["Trash"]

_IDLE = 1.0
"""Seconds the thread waits for more before it ends (a new one starts on the next discard)."""


class Trash:
    """Deletes what :meth:`discard` renames into ``folder``, on a thread of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._names = itertools.count()
        self._prefix = f"{os.getpid()}-{id(self):x}"  # unique among trashes on one folder
        self._cond = threading.Condition()
        self._pending = False
        self._thread: threading.Thread | None = None
        with contextlib.suppress(OSError):
            if any(os.scandir(self.folder)):
                self._wake()  # a crashed daemon's leftovers

    def discard(self, path: Path) -> None:
        """Take ``path`` (a directory or a file) off its path now; delete it soon."""
        target = self.folder / f"{self._prefix}-{next(self._names)}-{path.name}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return
        except OSError:
            # Not on the trash's file system (or not movable): delete it here.
            _delete(path)
            return
        self._wake()

    def empty(self) -> None:
        """Delete everything in the trash now, on this thread."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                _delete(Path(entry.path))

    def _wake(self) -> None:
        with self._cond:
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chartd-trash", daemon=True)
                self._thread.start()
            else:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(_IDLE)
                if not self._pending:
                    self._thread = None  # the next discard starts another
                    return
                self._pending = False
            self.empty()


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
