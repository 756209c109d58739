"""HTML built safe by construction: every value is escaped unless it is already :class:`Html`.

The inspector's pages are Python format strings filled by :func:`html`,
which escapes each argument the way an autoescaping template engine does:
a value becomes markup only by passing through :func:`html` (or
:func:`join` of such pieces). So an entity's name, its data, an error
message or a label shows as text, whatever it holds::

    >>> from engine.web.markup import html
    >>> html("<td>{}</td>", "<img src=x onerror=alert(1)>")
    Html('<td>&lt;img src=x onerror=alert(1)&gt;</td>')
    >>> html("<p>{}</p>", html("<b>{}</b>", "&"))
    Html('<p><b>&amp;</b></p>')

:func:`json_script` puts a value in a page as JSON that no ``</script>``
inside it can end early.
"""

from __future__ import annotations

import html as _std
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["Html", "html", "join", "json_script"]


class Html(str):
    """A string that is markup already: :func:`html` inserts it as it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Html({str.__repr__(self)})"


def escape(value: Any) -> str:
    """``value`` as HTML text (quotes too, so it is safe in an attribute)."""
    if isinstance(value, Html):
        return value
    return _std.escape(str(value), quote=True)


def html(template: str, *args: Any, **kwargs: Any) -> Html:
    """``template`` (trusted markup) with each ``{}`` filled by an escaped value."""
    return Html(
        template.format(*(escape(a) for a in args), **{k: escape(v) for k, v in kwargs.items()})
    )


def join(pieces: Iterable[Any], sep: str = "") -> Html:
    """Pieces joined, each escaped unless it is :class:`Html`."""
    return Html(sep.join(escape(p) for p in pieces))


# Characters that end a <script> or open a comment in it, and the two line
# separators JavaScript once read as newlines: as \\u escapes, JSON still.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def json_script(element_id: str, value: Any) -> Html:
    """``value`` as ``<script type="application/json">``, read with ``JSON.parse``.

    >>> print(json_script("d", {"name": "</script>"}))
    <script type="application/json" id="d">{"name": "\\u003c/script\\u003e"}</script>
    """
    text = json.dumps(value, sort_keys=True).translate(_SCRIPT_SAFE)
    return Html(html('<script type="application/json" id="{}">', element_id) + text + "</script>")
