"""``docker container prune``: which stopped containers a prune removes.

moby's ``ContainersPrune`` (``daemon/prune.go``) takes ``until`` (created
before a time; one at most) and ``label``/``label!`` (``KEY`` or
``KEY=VALUE``: the container has it, or has it not). Here ``until`` is a
Unix timestamp (``1736000000.5``): a front end reads docker's other forms
(``10m``, RFC 3339) with ``engine.api.times.parse_time`` first, as the gRPC
API does. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import engine
from engine.errors import InvalidParameter
from statecharts.container.listing import PRUNE_FILTERS, Filters, check_filters, labels_match

__all__ = ["Prune"]

_UNIX = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Prune:
    """A prune's filters, checked: ``until`` in seconds since the epoch (None: no bound)."""

    until: float | None
    labels: tuple[str, ...]
    not_labels: tuple[str, ...]

    @classmethod
    def of(cls, filters: Filters) -> Prune:
        """Check ``filters`` as moby does."""
        check_filters(filters, PRUNE_FILTERS)
        untils: Sequence[str] = filters.get("until", ())
        if len(untils) > 1:
            raise InvalidParameter("more than one until filter specified")
        until = None
        if untils:
            if not _UNIX.fullmatch(untils[0]):
                raise InvalidParameter(
                    f'failed to parse value as time or duration: "{untils[0][:64]}"'
                )
            until = float(untils[0])
        return cls(until, tuple(filters.get("label", ())), tuple(filters.get("label!", ())))

    def selects(self, container: engine.Entity) -> bool:
        """Whether the prune removes this (stopped) container."""
        labels: Mapping[str, Any] = container.data.get("labels") or {}
        if self.until is not None and container.created_at > self.until:
            return False
        if not labels_match(labels, self.labels):
            return False
        # moby: a container is kept when it matches every label! filter at once
        return not (self.not_labels and labels_match(labels, self.not_labels))
