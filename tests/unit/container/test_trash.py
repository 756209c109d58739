"""Trash: a discarded path leaves its place at once and is deleted soon after."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from statecharts.container import trash as trash_module
from statecharts.container.trash import Trash


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_text("x")
    (root / "top").write_text("y")
    return root


def test_a_discarded_directory_leaves_its_path_at_once_and_is_deleted_after(
    tmp_path: Path,
) -> None:
    bin_ = Trash(tmp_path / "trash")
    made = tree(tmp_path / "made")
    lone = tmp_path / "lone-file"
    lone.write_text("z")

    bin_.discard(made)
    bin_.discard(lone)
    bin_.discard(tmp_path / "never-made")  # nothing there: nothing to do

    assert not made.exists() and not lone.exists()
    eventually(lambda: not any(bin_.folder.iterdir()), "the trash is empty")


def test_a_new_trash_deletes_what_a_crashed_daemon_left(tmp_path: Path) -> None:
    tree(tmp_path / "trash" / "123-left-behind")

    Trash(tmp_path / "trash")

    eventually(lambda: not any((tmp_path / "trash").iterdir()), "the leftovers are gone")


def test_what_cannot_be_renamed_into_the_trash_is_deleted_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_ = Trash(tmp_path / "trash")
    made = tree(tmp_path / "made")

    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(trash_module.os, "rename", cross_device)
    bin_.discard(made)

    assert not made.exists()
