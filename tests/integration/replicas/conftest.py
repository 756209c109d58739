"""Fixtures of the replica tests: engine processes on one PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from replica_procs import WAIT, Worker


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Start workers by appending; every one still running is killed at the end."""
    started: list[Worker] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait(WAIT)
        if w.proc.stdout is not None:
            w.proc.stdout.close()
