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
from pathlib import Path

from statecharts.container.worker import Worker

__all__ = ["Trash"]


class Trash:
    """Deletes what :meth:`discard` renames into ``folder``, on a thread of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._names = itertools.count()
        self._prefix = f"{os.getpid()}-{id(self):x}"  # unique among trashes on one folder
        self._worker: Worker[Path] = Worker("chartd-trash", _delete)
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):  # what a crashed daemon left
                self._worker.put(Path(entry.path))

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
        self._worker.put(target)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
