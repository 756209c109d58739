"""``docker top``: the host's ``ps`` on a container's processes, read as moby reads it.

moby runs ``ps`` with the caller's options (``-ef`` by default) and
``-q PID,PID,...`` (the container's processes), again without ``-q`` if
``ps`` refuses the pair (some options cannot go with it), and keeps the lines
whose PID column is one of the container's (a thread line, PID ``-``, goes
with the process line above it). :func:`check_ps_args` and
:func:`parse_ps_output` are pure; :func:`run_ps` runs the command.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Collection
from dataclasses import dataclass

from engine.errors import InvalidParameter, System

__all__ = ["DEFAULT_PS_ARGS", "Top", "check_ps_args", "parse_ps_output", "run_ps"]

DEFAULT_PS_ARGS = "-ef"
_PS_TIMEOUT = 30.0  # seconds; ps reads /proc and ends, a bound only against a hung one
_MAX_ARGS = 4096  # characters of options: more is no ps command line anyone writes
# moby's validatePSArgs: an output column renamed to PID would fool the PID lookup.
_RENAMED_PID = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


@dataclass(frozen=True, slots=True)
class Top:
    """What ``docker top`` shows: the column titles and a row of cells per process."""

    titles: list[str]
    processes: list[list[str]]


def check_ps_args(ps_args: str) -> None:
    """Refuse options that rename a column to PID (moby's check) or that no ps takes."""
    if len(ps_args) > _MAX_ARGS:
        raise InvalidParameter(f"ps options longer than {_MAX_ARGS} characters")
    if "\x00" in ps_args:
        raise InvalidParameter("ps options may not contain NUL")
    for key, value in _RENAMED_PID.findall(ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')


def _fields(line: str) -> list[str]:
    """Go's fieldsASCII: split on ASCII whitespace only."""
    return [f for f in re.split(r"[ \t\n\v\f\r]+", line) if f]


def parse_ps_output(output: str, pids: Collection[int]) -> Top:
    """The rows of ``ps`` output that belong to ``pids`` (moby's parsePSOutput)."""
    lines = output.split("\n")
    titles = _fields(lines[0]) if lines else []
    if "PID" not in titles:
        raise System("Couldn't find PID field in ps output")
    column = titles.index("PID")
    processes: list[list[str]] = []
    kept_above = False
    for line in lines[1:]:
        fields = _fields(line)
        if not fields:
            continue
        if len(fields) <= column:
            raise System(f"Unexpected ps output line: {line[:200]!r}")
        if fields[column] == "-":
            if kept_above:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[column])
        except ValueError:
            raise System(
                f"Unexpected pid '{fields[column]}': strconv.Atoi: parsing "
                f'"{fields[column]}": invalid syntax'
            ) from None
        kept_above = pid in pids
        if kept_above:
            processes.append(_row(fields, len(titles)))
    return Top(titles, processes)


def _row(fields: list[str], columns: int) -> list[str]:
    """As many cells as titles: the overhanging fields (a command's words) joined."""
    return [*fields[: columns - 1], " ".join(fields[columns - 1 :])]


def run_ps(ps_args: str, pids: Collection[int]) -> str:
    """The output of ``ps ARGS -qPIDS`` (or of ``ps ARGS`` if ps refuses the pair)."""
    args = ps_args.split(" ")
    selected = "-q" + ",".join(str(p) for p in sorted(pids))
    try:
        return _ps([*args, selected])
    except System:
        return _ps(args)


def _ps(args: list[str]) -> str:
    try:
        done = subprocess.run(
            ["ps", *args],
            capture_output=True,
            timeout=_PS_TIMEOUT,
            check=False,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise System(f"ps: {exc}") from exc
    if done.returncode != 0:
        # As moby: the first line of what ps said is the error.
        first = done.stderr.decode(errors="replace").split("\n", 1)[0]
        raise System(f"ps: {first or f'exit status {done.returncode}'}")
    return done.stdout.decode(errors="replace")
