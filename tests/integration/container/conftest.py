"""Fixtures of the container service tests: daemons on ``tmp_path``, stray pids.

The helpers themselves live in ``container_daemon`` (importable by the tests).
Everything here runs real processes under ProcessRuntime: without what it
needs (Linux pidfds, ``/bin/sh``) the tests are skipped, and fail under CI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from container_daemon import Daemon, Strays

from engine.errors import NotImplemented
from statecharts.container.process import ProcessRuntime


@pytest.fixture(scope="session")
def process_runtime(prerequisites: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """ProcessRuntime works on this machine; else the test is skipped (failed under CI)."""
    try:
        ProcessRuntime(tmp_path_factory.mktemp("probe"), freezer="signal").close()
    except NotImplemented as exc:
        prerequisites.missing(str(exc))


@pytest.fixture
def strays() -> Iterator[Strays]:
    found = Strays()
    yield found
    found.kill()


@pytest.fixture
def open_daemon(tmp_path: Path, process_runtime: None) -> Iterator[Callable[..., Daemon]]:
    """Opens Daemons on ``tmp_path`` (one at a time); every one is closed at teardown."""
    opened: list[Daemon] = []

    def open_(**kw: Any) -> Daemon:
        daemon = Daemon(tmp_path, **kw)
        opened.append(daemon)
        return daemon

    yield open_
    for daemon in reversed(opened):
        daemon.close()


@pytest.fixture
def daemon(open_daemon: Callable[..., Daemon]) -> Daemon:
    return open_daemon()
