"""``docker container prune``: which stopped containers a prune removes.

moby's ``ContainersPrune`` (``daemon/prune.go``) takes ``until`` (created
before a time, in docker's forms: a duration before now, an RFC 3339 time, a
Unix timestamp; one at most) and ``label``/``label!`` (``KEY`` or
``KEY=VALUE``: the container has it, or has it not). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import engine
from engine.cli_times import TimeError, parse_time
from engine.errors import InvalidParameter
from statecharts.container.listing import PRUNE_FILTERS, Filters, check_filters, labels_match

__all__ = ["Prune"]


@dataclass(frozen=True, slots=True)
class Prune:
    """A prune's filters, checked: ``until`` in seconds since the epoch (None: no bound)."""

    until: float | None
    labels: tuple[str, ...]
    not_labels: tuple[str, ...]

    @classmethod
    def of(cls, filters: Filters, now: float) -> Prune:
        """Check ``filters`` as moby does; ``now`` is what a duration counts back from."""
        check_filters(filters, PRUNE_FILTERS)
        untils: Sequence[str] = filters.get("until", ())
        if len(untils) > 1:
            raise InvalidParameter("more than one until filter specified")
        until = None
        if untils:
            try:
                until = parse_time(untils[0], int(now * 1e9)) / 1e9
            except TimeError as exc:
                raise InvalidParameter(str(exc)) from None
        return cls(until, tuple(filters.get("label", ())), tuple(filters.get("label!", ())))

    def selects(self, container: engine.Entity) -> bool:
        """Whether the prune removes this (stopped) container."""
        labels: Mapping[str, Any] = container.data.get("labels") or {}
        if self.until is not None and container.created_at > self.until:
            return False
        if not labels_match(labels, self.labels):
            return False
        return not any(labels_match(labels, [spec]) for spec in self.not_labels)
