"""What docker's Engine API reads of containers the service lists: filters and log entries.

Kept apart from the gRPC servicer: the Engine API's list and logs endpoints
apply them to what :class:`~engine.api.containers_service.ContainerService`
gives.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import engine
from engine.api.containers_service import StatusOf

__all__ = ["has_label", "log_entries", "matches"]

_CHUNK = 1024 * 1024  # past any json-file line: 16 KiB of output, each byte at most 6 escaped
_Ids = Sequence[str]


def matches(
    e: engine.Entity, filters: Mapping[str, _Ids], statuses: set[str], status_of: StatusOf
) -> bool:
    """Whether a container passes a listing's filters: a status of ``statuses`` (if any),
    an ID prefix, a part of its name, and every label (``key`` or ``key=value``) asked for."""
    name = str(e.data.get("name", "")).lstrip("/")
    labels = e.data.get("labels") or {}
    return (
        (not statuses or status_of(e.configuration, e.data) in statuses)
        and ("id" not in filters or any(e.id.startswith(v) for v in filters["id"]))
        and ("name" not in filters or any(v.lstrip("/") in name for v in filters["name"]))
        and ("label" not in filters or all(has_label(labels, v) for v in filters["label"]))
    )


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
