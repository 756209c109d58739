"""Version negotiation: ``/v1.xx/...`` paths, the API version every answer names.

As moby's version middleware: a path may start with ``/v<version>``, which
must lie between :data:`MIN_API_VERSION` and :data:`API_VERSION` (else 400
with moby's message, in plain text to a client too old to read JSON errors);
a path without one is served at :data:`API_VERSION`.
Every answer carries ``API-Version``, ``OSType`` and ``Server`` headers, so
a client (``docker`` pings first) settles on the lower of its own and ours.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match

from engine.errors import InvalidParameter

__all__ = ["API_VERSION", "MIN_API_VERSION", "VersionMiddleware", "parse_version"]

API_VERSION = "1.51"
"""The Engine API version chartd speaks (docker 28.3's; docker 28.x clients negotiate down)."""
MIN_API_VERSION = "1.24"
"""The oldest version a client may ask for (moby 28's minimum)."""

_PREFIX = re.compile(r"^/v([0-9.]+)(/.*)$")

_Scope = dict[str, Any]


_INT64_MAX = 2**63 - 1


def parse_version(text: str) -> tuple[int, ...]:
    """A version as moby compares them: dot-separated numbers, a missing or bad part is 0.

    As Go's ``strconv.Atoi`` reads a part, one past a 64-bit integer is bad
    (0), and it is never converted: a path of thousands of digits is a
    version too old, as moby says. Trailing zero parts are dropped, so
    ``1.51.0`` is ``1.51`` (moby pads the shorter version with zeros).
    """
    parts = [_part(p) for p in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _part(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        return 0
    digits = text.lstrip("0")
    if len(digits) > len(str(_INT64_MAX)):
        return 0
    number = int(digits or "0")
    return number if number <= _INT64_MAX else 0


def _check(version: str) -> None:
    wanted = parse_version(version)
    if wanted < parse_version(MIN_API_VERSION):
        raise InvalidParameter(
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version"
        )
    if wanted > parse_version(API_VERSION):
        raise InvalidParameter(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )


def _plain(message: str) -> Response:
    """Go's ``http.Error``: the message and a newline, as plain text, 400."""
    headers = {"X-Content-Type-Options": "nosniff"}
    return PlainTextResponse(message + "\n", status_code=400, headers=headers)


class VersionMiddleware:
    """Strips and checks the version prefix; adds the version headers to every answer.

    The version a request asked for is in ``scope["state"]["api_version"]``.
    A version out of range is answered by ``refuse`` (the error map's).
    """

    def __init__(self, app: Any, server: str, refuse: Any) -> None:
        self.app = app
        self.refuse = refuse
        self.headers = [
            (b"api-version", API_VERSION.encode()),
            (b"ostype", b"linux"),
            (b"server", f"Docker/{server} (linux)".encode()),
            (b"docker-experimental", b"false"),
        ]

    def _routed(self, scope: _Scope) -> bool:
        """Whether a route takes the request (its path and its method): moby answers any
        other "page not found", whatever version its path names."""
        routes = getattr(self.app, "routes", None)
        if routes is None:  # an app without routes of its own: every request is its
            return True
        return any(route.matches(scope)[0] == Match.FULL for route in routes)

    async def __call__(self, scope: _Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        version = API_VERSION
        found = _PREFIX.match(scope["path"])
        if found is not None:
            version, rest = found.group(1), found.group(2)
            scope = {**scope, "path": rest, "raw_path": rest.encode()}
        scope.setdefault("state", {})["api_version"] = version

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self.headers]}
            await send(message)

        try:
            if self._routed(scope):  # moby checks the version of a routed request only
                _check(version)
        except InvalidParameter as exc:
            # moby answers a client older than 1.24 in plain text, which it can read
            old = parse_version(version) < parse_version(MIN_API_VERSION)
            answer: Any = _plain(exc.message) if old else self.refuse(exc)
            await answer(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
