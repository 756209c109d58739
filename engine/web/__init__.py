"""The inspector: a live view of an engine's charts, entities and journal in a browser.

:class:`Inspector` is a Starlette application over a :class:`Source` (a
running engine, or any engine database read-only); ``chartd serve --http``
and ``chartd ui`` serve it on uvicorn (:mod:`engine.httpserve`), and
``chartd chart export --format html`` writes one entity's page as a file
(:func:`engine.web.export.standalone`). docs/inspector.md says what it shows
and why it is built this way.
"""

from __future__ import annotations

from engine.web.app import LOOPBACK_HOSTS, Inspector
from engine.web.source import Source

__all__ = ["LOOPBACK_HOSTS", "Inspector", "Source"]
