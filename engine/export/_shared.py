"""What the renderers share: transition labels and names that other tools accept."""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping

from engine.model.chart import ChartModel, Transition


def label(t: Transition) -> str:
    """``event [when]``, and ``(internal)`` for a targetless transition."""
    text = t.event or "(eventless)"
    if t.when:
        text += f" [{t.when}]"
    if t.target is None:
        text += " (internal)"
    return text


def node(path: str) -> str:
    """A diagram identifier for ``path`` (dots and dashes are not allowed in one)."""
    return path.replace(".", "__").replace("-", "_")


def unique(paths: Iterable[str], make: Callable[[str], str]) -> dict[str, str]:
    """``make(path)`` for each path, with ``_2``, ``_3``... added where two would be equal.

    Paths are taken in the order given, so the first one keeps the plain
    name: the result depends on the chart only, never on a hash.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for path in paths:
        name = base = make(path)
        n = 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out[path] = name
    return out


def diagram_names(model: ChartModel) -> dict[str, str]:
    """An identifier per state for DOT, Mermaid and PlantUML, unique in the chart."""
    return unique(model.states, node)


_NOT_NCNAME = re.compile(r"[^A-Za-z0-9_.-]")


def ncname(text: str) -> str:
    """``text`` as an XML NCName: other characters become ``_``, a bad start gets ``_``."""
    name = _NOT_NCNAME.sub("_", text)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "_" + name
    return name


_SERIALISING = threading.Lock()


def xml_text(root: ET.Element, prefixes: Mapping[str, str]) -> str:
    """``root`` as XML text, each namespace written with its prefix in ``prefixes``
    (uri -> prefix; ``""`` for the default namespace).

    ElementTree keeps one registry of prefixes for the whole process, so the
    prefixes are set under a lock just before each serialisation: an SCXML
    export and the inspector's SVG diagram each want their own namespace as
    the default one, and the diagram was written as ``<ns0:svg>`` (which no
    browser draws inline) after an SCXML export in the same process.
    """
    with _SERIALISING:
        for uri, prefix in prefixes.items():
            ET.register_namespace(prefix, uri)
        return ET.tostring(root, encoding="unicode")
