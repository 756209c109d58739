"""Chart versions: registering one (kept in the store with its content hash), and comparing.

Every version registered is stored with its document, so that its entities
keep running on it after a newer one is registered, in this engine or in
another one on the same database. A version number registered again must
come with the same content: a chart that changed needs a new number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from engine import core
from engine.errors import ChartdError, Conflict
from engine.model.chart import ChartModel
from engine.model.diff import diff, document_differences
from engine.model.validate import build
from engine.ports import ChartVersionRow
from engine.runtime.bindings import Bindings
from engine.runtime.shared import Shared

__all__ = ["Versions", "chart_document", "content_hash"]


def chart_document(chart: core.Chart) -> dict[str, Any]:
    """The chart's document as JSON: what the store keeps of a version."""
    document: dict[str, Any] = json.loads(
        json.dumps(
            chart.model.document.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            sort_keys=True,
        )
    )
    return document


def content_hash(document: Mapping[str, Any]) -> str:
    """The SHA-256 of a chart document's canonical JSON, its descriptions left out.

    A description changes nothing an entity does: fixing one needs no new version.
    """
    text = json.dumps(_described_not(document), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _described_not(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _described_not(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [_described_not(v) for v in value]
    return value


class Versions:
    """Registers chart versions for one engine."""

    def __init__(self, shared: Shared, adopt: Callable[[ChartModel], int]) -> None:
        self._s = shared
        self._adopt = adopt

    def register(self, chart: core.Chart, bindings: Bindings | None) -> None:
        """See :meth:`engine.Engine.register`."""
        s = self._s
        if bindings is None:
            # By default the versions of a chart share their code.
            current = s.registry.get(chart.name)
            bindings = current.bindings if current is not None else Bindings()
        self.keep(chart, then=lambda: s.registry.add(chart, bindings))

    def keep(self, chart: core.Chart, then: Callable[[], None] | None = None) -> None:
        """Store the chart's version unless stored; Conflict if stored with other content.

        ``then`` runs between the check and the store (registering the code:
        a chart refused for its code is not stored).
        """
        s = self._s
        document = chart_document(chart)
        digest = content_hash(document)
        stored = {v.version: v for v in s.store.chart_versions(chart.name)}
        same = stored.get(chart.version)
        if same is not None and same.hash != digest:
            raise Conflict(
                f"chart {chart.name!r} version {chart.version} is registered already with "
                f"other content ({_differences(same.document, document)}): "
                "give the changed chart a new version number"
            )
        if then is not None:
            then()
        if not stored:
            # The chart's first version: entities made before versions were kept are
            # presumed on version 1, and moved as this version declares from it.
            self._adopt(chart.model)
        if same is None:
            s.store.add_chart_version(
                ChartVersionRow(chart.name, chart.version, digest, document, s.clock.now())
            )


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What differs between two documents of one version, for the refusal."""
    try:
        changes = [str(c) for c in diff(build(old), build(new))]
    except ChartdError:  # a stored document this chartd cannot read: name the keys
        changes = []
    if not changes:
        keys = document_differences(old, new)
        return "differs in " + ", ".join(keys) if keys else "differs"
    shown = "; ".join(changes[:5])
    more = f"; and {len(changes) - 5} more" if len(changes) > 5 else ""
    return shown + more
