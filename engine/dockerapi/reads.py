"""What docker's Engine API reads itself: an event's labels, an attached container's log.

The events endpoint filters the engine's outbox by label; attach reads a log
it holds open (what a short-lived ``--rm`` container wrote is read even once
its removal took the file off its path).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, BinaryIO

__all__ = ["has_label", "log_entries"]

_CHUNK = 1024 * 1024  # past any json-file line: 16 KiB of output, each byte at most 6 escaped


def has_label(labels: Mapping[str, Any], spec: str) -> bool:
    """Whether ``labels`` has the label ``spec`` names: ``key``, or ``key=value``."""
    key, eq, val = spec.partition("=")
    return key in labels and (not eq or str(labels[key]) == val)


def log_entries(log: BinaryIO) -> tuple[list[dict[str, Any]], int]:
    """The json-file log's whole entries from where ``log`` stands (``log``, ``stream``,
    ``time``), and how many bytes they took; a torn last line is left for the next read."""
    data = log.read(_CHUNK)
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) < len(data):
        log.seek(len(whole) - len(data), 1)
    entries = []
    for line in whole.splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            entry = json.loads(line)  # a torn or foreign line is skipped
            if isinstance(entry["log"], str) and entry["stream"] in ("stdout", "stderr"):
                entries.append(entry)
    return entries, len(whole)
