"""Which containers a listing or a prune selects: moby's filters, checked and applied.

``ps --filter`` (moby's ``daemon/list.go``): ``status`` (one of moby's
statuses; it lists stopped containers without ``--all``), ``id`` (a full ID
or unique prefix), ``name`` (a regular expression searched in the name, with
and without its slash), ``label`` (``KEY`` or ``KEY=VALUE``), ``health``
(``starting``, ``healthy``, ``unhealthy`` or ``none``) and ``exited`` (an
exit code, of containers that ran and stopped). Values of one key match if
any matches; different keys must all match; ``label`` filters must all match,
as moby's ``MatchKVList``.

``container prune --filter`` (moby's ``daemon/prune.go``): ``until`` (created
before a time: docker's time forms) and ``label``/``label!``.

Pure: what a container is made of comes in as arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidParameter

__all__ = [
    "HEALTH_STATUSES",
    "LIST_FILTERS",
    "PRUNE_FILTERS",
    "STATUSES",
    "Filters",
    "ListFilter",
    "check_filters",
    "labels_match",
]

Filters = Mapping[str, Sequence[str]]
"""Filter values by key, as given (``{"status": ["exited", "created"]}``)."""

STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
"""moby's container statuses, as ``status=`` takes them."""
HEALTH_STATUSES = ("starting", "healthy", "unhealthy", "none")
"""What ``health=`` takes: a health check's status, or ``none`` without one."""
LIST_FILTERS = ("status", "id", "name", "label", "health", "exited")
"""The keys ``ps --filter`` takes."""
PRUNE_FILTERS = ("until", "label", "label!")
"""The keys ``container prune --filter`` takes."""

# A name filter is a regular expression run on every name. Python's engine backtracks
# where Go's RE2 does not: a repeated group can take exponential time, and every
# unbounded repetition multiplies the work by the name's length. Names are at most 253
# characters; two repetitions and no repeated group keep any pattern quick.
_REPEATED_GROUP = re.compile(r"(?<!\\)\)(?:\{[0-9,]*\}|[*+]|\{)")
_UNBOUNDED = re.compile(r"(?<!\\)(?:[*+]|\{[0-9]*,\})")
_CLASS = re.compile(r"\[(?:\\.|[^\]\\])*\]")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?[=!<]")
_MAX_REPEATS = 2
_MAX_PATTERN = 512
_RUNNING = ("running", "paused", "restarting")


def check_filters(filters: Filters, known: Sequence[str]) -> None:
    """Refuse a key not in ``known``: moby's ``invalid filter 'KEY'``."""
    for key in filters:
        if key not in known:
            raise InvalidParameter(f"invalid filter '{key}'")


def labels_match(labels: Mapping[str, Any], specs: Sequence[str]) -> bool:
    """Every ``KEY`` or ``KEY=VALUE`` of ``specs`` holds for ``labels`` (moby's MatchKVList)."""
    for spec in specs:
        key, eq, value = spec.partition("=")
        if key not in labels or (eq and str(labels[key]) != value):
            return False
    return True


def _name_pattern(value: str) -> re.Pattern[str] | None:
    """The name filter's expression; None if it does not compile (moby skips it)."""
    outside_classes = _CLASS.sub("x", value)
    if (
        len(value) > _MAX_PATTERN
        or _REPEATED_GROUP.search(outside_classes)
        or len(_UNBOUNDED.findall(outside_classes)) > _MAX_REPEATS
        or _BACKREFERENCE.search(value)
    ):
        raise InvalidParameter(
            f"invalid filter 'name={value[:64]}': repeated groups, more than "
            f"{_MAX_REPEATS} unbounded repetitions and back-references are not supported"
        )
    try:
        return re.compile(value)
    except (re.error, RecursionError, OverflowError):
        return None


@dataclass(frozen=True, slots=True)
class ListFilter:
    """``ps``'s filters, checked (InvalidParameter with moby's messages) and ready to apply."""

    statuses: frozenset[str]
    ids: tuple[str, ...]
    names: tuple[re.Pattern[str], ...]
    name_given: bool
    labels: tuple[str, ...]
    health: frozenset[str]
    exited: frozenset[int]

    @classmethod
    def of(cls, filters: Filters) -> ListFilter:
        """Check ``filters`` as moby's list does and keep what applying them needs."""
        check_filters(filters, LIST_FILTERS)
        for status in filters.get("status", ()):
            if status not in STATUSES:
                raise InvalidParameter(f"invalid filter 'status={status}'")
        for health in filters.get("health", ()):
            if health not in HEALTH_STATUSES:
                raise InvalidParameter(f"Unrecognised filter value for health: {health}")
        codes = []
        for code in filters.get("exited", ()):
            # Go's Atoi: digits with a sign, within 64 bits (a code no process has matches none)
            why = "invalid syntax"
            if re.fullmatch(r"[+-]?[0-9]+", code, re.ASCII):
                digits = code.lstrip("+-").lstrip("0")
                why = "value out of range" if len(digits) > 19 else ""
                if not why and not -(2**63) <= int(code) < 2**63:
                    why = "value out of range"
            if why:
                raise InvalidParameter(
                    f"invalid filter 'exited={code}': strconv.Atoi: parsing \"{code}\": {why}"
                )
            codes.append(int(code))
        names = [_name_pattern(v) for v in filters.get("name", ())]
        return cls(
            frozenset(filters.get("status", ())),
            tuple(filters.get("id", ())),
            tuple(p for p in names if p is not None),
            bool(names),
            tuple(filters.get("label", ())),
            frozenset(filters.get("health", ())),
            frozenset(codes),
        )

    @property
    def lists_stopped(self) -> bool:
        """A status filter lists stopped containers without ``--all``, as moby's does."""
        return bool(self.statuses)

    def id_matches(self, container_id: str, all_ids: Sequence[str]) -> bool:
        """An ``id=`` value is the full ID or its unique prefix (moby's GetByPrefix)."""
        if not self.ids:
            return True
        for value in self.ids:
            if container_id == value:
                return True
            if (
                value
                and container_id.startswith(value)
                and sum(1 for other in all_ids if other.startswith(value)) == 1
            ):
                return True
        return False

    def matches(
        self,
        *,
        status: str,
        name: str,
        labels: Mapping[str, Any],
        exit_code: int,
        started: bool,
        health: str,
    ) -> bool:
        """Whether a container with these properties is listed (its ID checked apart)."""
        plain = name.lstrip("/")
        return (
            (not self.statuses or status in self.statuses)
            and (
                not self.name_given
                or any(p.search("/" + plain) or p.search(plain) for p in self.names)
            )
            and labels_match(labels, self.labels)
            and (not self.health or health in self.health)
            and (
                not self.exited or (exit_code in self.exited and started and status not in _RUNNING)
            )
        )
