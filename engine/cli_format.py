"""``--format`` for ``ps`` and ``inspect``: Go templates, rendered as docker's CLI renders them.

``ps``: a template runs once per container on :class:`ContainerContext`
(docker's ``formatter.ContainerContext``: ``{{.ID}}``, ``{{.Names}}``,
``{{.Status}}``, ``{{.Label "k"}}``, ...); ``table TEMPLATE`` adds the
header row (each field's column name) and aligns the cells at the tabs;
``json`` is ``{{json .}}``, a JSON object per line. As docker's, the
template is parsed and tried on an empty container before the daemon is
asked: ``failed to parse template: ...`` or ``failed to execute template:
...`` on stderr, exit 1.

``inspect``: the template runs on each container's document (a missing key
is an error, as docker's raw fallback), each output on a line; ``json`` is
the compact array. A template that does not parse exits 64 with
``template parsing error: ...``; one that fails on a container prints that
error at the end and exits 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_output import command_text, echo_err, human_ago, status_text
from engine.gotemplate import (
    HEADER_FUNCTIONS,
    ArgError,
    Fields,
    StringMap,
    Template,
    TemplateError,
    go_type,
    parse,
)

__all__ = [
    "ContainerContext",
    "FormatFailed",
    "check_ps_format",
    "fail_with",
    "inspect_output",
    "parse_inspect_format",
    "ps_output",
    "tabwrite",
    "write",
]

_HEADERS = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
}


class FormatFailed(Exception):
    """A format that cannot be used: ``message`` for stderr, ``status`` to exit with."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ContainerContext(Fields):
    """One container as ``ps --format`` templates see it (docker's field names and texts)."""

    template_fields = (*_HEADERS, "Label")
    type_name = "*formatter.ContainerContext"

    def __init__(
        self, c: c_pb2.ContainerSummary | None = None, now: float = 0.0, trunc: bool = True
    ) -> None:
        self._c = c or c_pb2.ContainerSummary()
        self._now = now
        self._trunc = trunc

    # docker's names: fields are methods with capitalised names.
    def ID(self) -> str:
        """The ID, 12 characters unless --no-trunc."""
        return self._c.id[:12] if self._trunc else self._c.id

    def Names(self) -> str:
        """The name, without its slash."""
        return self._c.name.lstrip("/")

    def Image(self) -> str:
        """Empty: chartd's containers run host commands, not images."""
        return ""

    def Command(self) -> str:
        """The command, quoted (cut to 20 characters unless --no-trunc)."""
        return command_text(self._c.cmd, full=not self._trunc)

    def CreatedAt(self) -> str:
        """The creation time as Go prints a time: ``2006-01-02 15:04:05 -0700 MST``."""
        when = datetime.fromtimestamp(self._c.created.seconds, UTC).astimezone()
        return when.strftime("%Y-%m-%d %H:%M:%S %z ") + (when.tzname() or "UTC")

    def RunningFor(self) -> str:
        """How long ago it was created."""
        return human_ago(self._c.created.ToNanoseconds() / 1e9, self._now)

    def Ports(self) -> str:
        """Empty: no published ports."""
        return ""

    def State(self) -> str:
        """moby's status word: running, exited, ..."""
        return self._c.state

    def Status(self) -> str:
        """``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ..."""
        return status_text(self._c, self._now) if self._c.id else ""

    def Size(self) -> str:
        """``0B``: no writable layer."""
        return "0B"

    def Labels(self) -> str:
        """``k=v,k2=v2``, sorted by key."""
        return ",".join(f"{k}={v}" for k, v in sorted(self._c.labels.items()))

    def Label(self, name: str) -> str:
        """The value of label ``name`` (empty if it has none)."""
        if not isinstance(name, str):
            raise ArgError(f"wrong type for value; expected string; got {go_type(name)}")
        return str(self._c.labels.get(name, ""))

    def Mounts(self) -> str:
        """Empty: no mounts."""
        return ""

    def LocalVolumes(self) -> str:
        """``0``: no volumes."""
        return "0"

    def Networks(self) -> str:
        """Empty: no named networks."""
        return ""


def _ps_template(fmt: str) -> tuple[str, bool]:
    """The template docker runs for ``fmt`` (``table`` cut, ``\\t`` a tab), and if a table."""
    table = fmt.startswith("table")
    body = "{{json .}}" if fmt == "json" else fmt[len("table") :] if table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return body, table


def check_ps_format(fmt: str) -> None:
    """docker's check before the listing: the format parses and runs on an empty container."""
    try:
        tmpl = parse(fmt)
    except TemplateError as exc:
        raise FormatFailed(f"failed to parse template: {exc}") from None
    try:
        tmpl.execute(ContainerContext())
    except TemplateError as exc:
        raise FormatFailed(f"failed to execute template: {exc}") from None


def ps_output(found: Sequence[c_pb2.ContainerSummary], fmt: str, now: float, trunc: bool) -> str:
    """What ``ps --format FMT`` prints for ``found``."""
    body, table = _ps_template(fmt)
    try:
        tmpl = parse(body)
    except TemplateError as exc:
        raise FormatFailed(f"template parsing error: {exc}") from None
    rows = []
    for c in found:
        try:
            rows.append(tmpl.execute(ContainerContext(c, now, trunc)) + "\n")
        except TemplateError as exc:
            raise FormatFailed(f"template parsing error: {exc}") from None
    if not table:
        return "".join(rows)
    try:
        header = tmpl.execute(_HEADERS, functions=HEADER_FUNCTIONS)
    except TemplateError as exc:  # docker keeps what the header printed before the error
        header = exc.output
    return tabwrite(header + "\n" + "".join(rows))


def tabwrite(text: str, min_width: int = 10, padding: int = 3) -> str:
    """Go's ``text/tabwriter`` (padded with spaces): tab-terminated cells in aligned columns.

    A column's width is set per block of consecutive lines that have that
    column (Go's algorithm); a line's last cell, not ended by a tab, is not
    aligned.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    ends_open = lines and lines[-1] == [""]
    if ends_open:
        lines.pop()
    writer = _TabWriter(lines, min_width, padding)
    writer.blocks(0, len(lines), [])
    return "".join(line + "\n" for line in writer.out) if ends_open else "\n".join(writer.out)


class _TabWriter:
    """Go's tabwriter's format pass: column blocks found recursively, lines written padded."""

    def __init__(self, lines: list[list[str]], min_width: int, padding: int) -> None:
        self.lines = lines
        self.min_width = min_width
        self.padding = padding
        self.out: list[str] = []

    def blocks(self, start: int, end: int, widths: list[int]) -> None:
        """Lay out lines ``start`` to ``end`` whose first ``len(widths)`` columns are set."""
        column = len(widths)
        first = this = start
        while this < end:
            if column >= len(self.lines[this]) - 1:
                this += 1
                continue
            self.write(first, this, widths)
            first = this
            width = self.min_width
            while this < end and column < len(self.lines[this]) - 1:
                width = max(width, len(self.lines[this][column]) + self.padding)
                this += 1
            self.blocks(first, this, [*widths, width])
            first = this
        self.write(first, end, widths)

    def write(self, start: int, end: int, widths: list[int]) -> None:
        """Lines ``start`` to ``end``, each cell but the last padded to its column's width."""
        for cells in self.lines[start:end]:
            self.out.append(
                "".join(
                    cell.ljust(widths[j]) if j < len(widths) and j < len(cells) - 1 else cell
                    for j, cell in enumerate(cells)
                )
            )


def parse_inspect_format(fmt: str) -> Template | None:
    """The template of ``inspect --format`` (None for ``json``); exit 64 if it does not parse."""
    if fmt == "json":
        return None
    try:
        return parse(fmt)
    except TemplateError as exc:
        raise FormatFailed(f"template parsing error: {exc}", 64) from None


def inspect_output(
    documents: Sequence[Mapping[str, Any]], tmpl: Template | None
) -> tuple[str, list[str]]:
    """What ``inspect --format`` prints on stdout, and the errors it prints after."""
    if tmpl is None:
        return json.dumps(list(documents), separators=(",", ":"), ensure_ascii=False) + "\n", []
    out, errors = [], []
    for doc in documents:
        try:
            out.append(tmpl.execute(_typed(doc), missing_key_error=True) + "\n")
        except TemplateError as exc:
            errors.append(f"template parsing error: {exc}")
    return "".join(out) or "\n", errors


def _typed(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document with its label map marked as Go's ``map[string]string``."""
    config = doc.get("Config")
    if not isinstance(config, Mapping) or not isinstance(config.get("Labels"), Mapping):
        return doc
    labels = StringMap({str(k): str(v) for k, v in config["Labels"].items()})
    return {**doc, "Config": {**config, "Labels": labels}}


def write(text: str) -> None:
    """``text`` on stdout as it is."""
    sys.stdout.write(text)


def fail_with(error: FormatFailed) -> None:
    """Print the format's error on stderr and exit with its status."""
    echo_err(error.message)
    raise SystemExit(error.status)
