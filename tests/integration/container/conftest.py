"""Fixtures of the container service tests: daemons on ``tmp_path``, stray pids.

The helpers themselves live in ``container_daemon`` (importable by the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from container_daemon import Daemon, Strays


@pytest.fixture
def strays() -> Iterator[Strays]:
    found = Strays()
    yield found
    found.kill()


@pytest.fixture
def open_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
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
