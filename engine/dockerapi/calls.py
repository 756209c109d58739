"""How an endpoint reads its query and calls the blocking service without blocking the loop.

The service's operations block (a stop waits for the exit): each runs on a
worker thread of a bounded pool (:data:`THREADS`), so a burst of calls
queues instead of starting a thread each. Streams wait on the event loop
and take a thread only for a short read.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from starlette.requests import Request

from engine.api._fields import decode_json
from engine.dockerapi.backend import Daemon
from engine.errors import InvalidParameter

__all__ = [
    "MAX_BODY",
    "THREADS",
    "WAITERS",
    "blocking",
    "body",
    "daemon",
    "filters",
    "flag",
    "go_atoi",
    "go_int",
    "integer",
    "json_body",
    "negotiate",
    "query",
    "ref",
    "stop_timeout",
    "text",
]

T = TypeVar("T")

THREADS = 64
"""Worker threads for the service's blocking calls, shared by every request."""
WAITERS = 128
"""Worker threads for waits, apart: waits that never end cannot starve the other calls.
A wait past them queues (its exits are counted from its request on, none is missed)."""

MAX_BODY = 4 * 1024 * 1024
"""The largest request body read (a create's JSON: the service caps what it stores)."""

_FALSE = ("", "0", "no", "false", "none")  # moby's httputils.BoolValue
_MAX_REF = 256  # past any name or ID


def daemon(request: Request) -> Daemon:
    """The daemon the app serves."""
    found: Daemon = request.app.state.daemon
    return found


async def blocking(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on a worker thread of the bounded pool."""
    limiter: anyio.CapacityLimiter = request.app.state.limiter
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)


def _too_large() -> InvalidParameter:
    return InvalidParameter(f"the request body is too large: more than {MAX_BODY} bytes")


async def body(request: Request) -> bytes:
    """The request's body, read no further than :data:`MAX_BODY` bytes.

    A body that says it is larger is refused before any of it is read: the
    client is not waited on for bytes that would be refused anyway.
    """
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")


def _media_type(given: str) -> str:
    """The media type of a Content-Type header, lower-cased; as Go's mime parser reads it,
    its complaint about a malformed one (the message names the header)."""
    text = given.strip()
    major = _TOKEN.match(text)
    why = ""
    if major is None:
        why = "mime: no media type"
    elif text[major.end() : major.end() + 1] != "/":
        why = "mime: expected slash after first token"
    else:
        minor = _TOKEN.match(text, major.end() + 1)
        if minor is None:
            why = "mime: expected token after slash"
        elif text[minor.end() :].strip() and not text[minor.end() :].lstrip().startswith(";"):
            why = "mime: unexpected content after media subtype"
    if why:
        raise InvalidParameter(f"malformed Content-Type header ({given}): {why}")
    return text.split(";", 1)[0].strip().lower()


async def json_body(request: Request) -> bytes:
    """The body of an endpoint that reads JSON, as moby's ``ReadJSON`` takes one: a body
    must say it is ``application/json`` (only an empty one may say nothing)."""
    raw = await body(request)
    given = request.headers.get("content-type", "")
    if not given and not raw:
        return raw
    if _media_type(given) != "application/json":
        raise InvalidParameter(
            f"unsupported Content-Type header ({given}): must be 'application/json'"
        )
    return raw


def _accepted(header: str) -> list[tuple[str, float]]:
    """An ``Accept`` header's media ranges and their weights (``q``, 1 if not said)."""
    found = []
    for item in header.split(","):
        value, *params = (p.strip() for p in item.split(";"))
        weight = 1.0
        for param in params:
            name, _, given = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(given)
                except ValueError:
                    weight = 0.0
        if value:
            found.append((value.lower(), weight))
    return found


def negotiate(request: Request, offers: tuple[str, ...], default: str) -> str:
    """The offer the ``Accept`` header prefers, as moby negotiates a stream's type: the
    highest weight, then an exact range over ``type/*`` over ``*/*``, then the first
    offer; ``default`` if none is acceptable (or nothing is asked)."""
    best, best_weight, best_wild = default, -1.0, 3
    for offer in offers:
        for value, weight in _accepted(request.headers.get("accept", "")):
            if weight == 0.0 or weight < best_weight:
                continue
            wild = 2 if value == "*/*" else 1 if value.endswith("/*") else 0
            fits = wild == 2 or (wild == 1 and offer.startswith(value[:-1])) or value == offer
            if fits and (weight > best_weight or best_wild > wild):
                best, best_weight, best_wild = offer, weight, wild
    return best


def ref(request: Request) -> str:
    """The container the path names (a name or an ID), bounded and printable."""
    found = str(request.path_params["ref"])
    if not found or len(found) > _MAX_REF or not found.isprintable():
        raise InvalidParameter(f"invalid name or ID supplied: {found[:40]!r}".replace("'", '"'))
    return found


_HEX = frozenset("0123456789abcdefABCDEF")


def _query_error(query: str) -> str | None:
    """What Go's ``url.ParseQuery`` (moby's ``ParseForm``) finds wrong in a query, or None:
    a ``;`` separator, or a ``%`` without two hex digits (its first such error)."""
    found = None
    for pair in query.split("&"):
        if ";" in pair:
            found = "invalid semicolon separator in query"
        elif found is None:
            for part in pair.split("=", 1):
                at = part.find("%")
                while at >= 0:
                    if not (len(part) > at + 2 and {part[at + 1], part[at + 2]} <= _HEX):
                        escape = json.dumps(part[at : at + 3], ensure_ascii=False)
                        found = f"invalid URL escape {escape}"
                        break
                    at = part.find("%", at + 3)
                if found is not None:
                    break
    return found


def query(request: Request, name: str) -> str:
    """A query parameter as moby's handlers read one (``r.Form.Get``): its first value
    ('' if absent); a query Go cannot parse is refused with Go's message."""
    why = _query_error(request.scope.get("query_string", b"").decode("latin-1"))
    if why is not None:
        raise InvalidParameter(why)
    values = request.query_params.getlist(name)
    return values[0] if values else ""


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter as moby reads one (absent, 0, no, false, none: false)."""
    return query(request, name).strip().lower() not in _FALSE


def text(request: Request, name: str, limit: int = 256) -> str:
    """A text query parameter ('' if absent), bounded and printable."""
    value = query(request, name)
    if len(value) > limit or not value.isprintable():
        raise InvalidParameter(f"invalid {name}: at most {limit} printable characters")
    return value


def integer(request: Request, name: str) -> int | None:
    """An integer query parameter, None if absent or empty."""
    value = query(request, name)
    if value == "":
        return None
    try:
        number = int(value, 10)
    except ValueError:
        raise InvalidParameter(f'invalid {name}: "{value[:40]}" is not an integer') from None
    if not -(2**31) <= number < 2**31:
        raise InvalidParameter(f"invalid {name}: {number} is out of range")
    return number


_ATOI = re.compile(r"[+-]?[0-9]+", re.ASCII)


def go_atoi(request: Request, name: str) -> int:
    """A query parameter as moby's router reads a size (Go's ``strconv.Atoi``, which
    takes no empty value), refused with Go's own error otherwise."""
    return go_int(query(request, name))


def go_int(value: str, func: str = "strconv.Atoi") -> int:
    """``value`` as Go's ``strconv.Atoi`` (or ``ParseInt(value, 10, 64)``: ``func`` names
    which, for the message) reads it on a 64-bit machine; Go's error otherwise."""
    quoted = json.dumps(value[:64], ensure_ascii=False)  # Go's %q, near enough
    if not _ATOI.fullmatch(value):
        raise InvalidParameter(f"{func}: parsing {quoted}: invalid syntax")
    number = int(value, 10) if len(value) < 40 else 2**63
    if not -(2**63) <= number < 2**63:
        raise InvalidParameter(f"{func}: parsing {quoted}: value out of range")
    return number


def stop_timeout(request: Request) -> int | None:
    """A stop's ``t`` as moby's router reads it (Go's ``Atoi``; None if absent or empty).

    A negative one waits for the exit without end, as moby's; so does one past what
    the service counts in (a 32-bit number of seconds: 68 years).
    """
    value = query(request, "t")
    if value == "":
        return None
    number = go_int(value)
    return -1 if number >= 2**31 else max(number, -1)


def filters(request: Request, known: tuple[str, ...] | None) -> dict[str, list[str]]:
    """The ``filters`` parameter: JSON ``{"key": ["v", ...]}`` or ``{"key": {"v": true}}``;
    a key not ``known`` is refused (any key is taken if ``known`` is None)."""
    raw = query(request, "filters")
    if not raw:
        return {}
    given = decode_json(raw.encode("utf-8", "surrogatepass"), "invalid filter")
    if given is None:  # Go decodes null into no filters at all
        given = {}
    if not isinstance(given, dict):
        raise InvalidParameter("invalid filter: an object of lists is expected")
    out: dict[str, list[str]] = {}
    for key, values in given.items():
        if known is not None and key not in known:
            raise InvalidParameter(f"invalid filter '{key}'")
        listed = _filter_values(key, values)
        if listed:
            out[key] = listed
    return out


def _filter_values(key: str, values: Any) -> list[str]:
    """One filter's values: a list of strings, or moby's older ``{"value": true}`` form;
    none for null, which Go decodes as an empty set."""
    if values is None:
        return []
    if isinstance(values, dict):  # map[string]map[string]bool: a value of another type is bad
        if not all(isinstance(on, bool) for on in values.values()):
            raise InvalidParameter(f"invalid filter '{key}': an object of booleans is expected")
        values = [v for v, on in values.items() if on]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidParameter(f"invalid filter '{key}': a list of strings is expected")
    return values
