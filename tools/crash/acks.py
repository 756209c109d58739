"""The ack file: what a child fired (an intent) and what it was told (an ack), a JSON line each.

The parent reads it after the child died, to know which fires a client
heard back from (they must not be lost) and which it would retry.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line with one write(2): a SIGKILL keeps it whole or drops it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of the file at ``path``; none if it does not exist, torn lines skipped."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out
