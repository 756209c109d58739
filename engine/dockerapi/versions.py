"""Version negotiation: ``/v1.xx/...`` paths, the API version every answer names.

As moby's version middleware: a path may start with ``/v<version>``, which
must lie between :data:`MIN_API_VERSION` and :data:`API_VERSION` (else 400
with moby's message); a path without one is served at :data:`API_VERSION`.
Every answer carries ``API-Version``, ``OSType`` and ``Server`` headers, so
a client (``docker`` pings first) settles on the lower of its own and ours.
"""

from __future__ import annotations

import re
from typing import Any

from engine.errors import InvalidParameter

__all__ = ["API_VERSION", "MIN_API_VERSION", "VersionMiddleware", "parse_version"]

API_VERSION = "1.51"
"""The Engine API version chartd speaks (docker 28.3's; docker 28.x clients negotiate down)."""
MIN_API_VERSION = "1.24"
"""The oldest version a client may ask for (moby 28's minimum)."""

_PREFIX = re.compile(r"^/v([0-9.]+)(/.*)$")

_Scope = dict[str, Any]


_HUGE = 10**9  # past any real version part: a longer number compares as this


def parse_version(text: str) -> tuple[int, ...]:
    """A version as moby compares them: dot-separated numbers, a missing or bad part is 0.

    A part too long to be a real one is taken as huge, not converted: a path
    of thousands of digits is a version too new, not a failure.
    """
    return tuple(_part(p) for p in text.split("."))


def _part(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        return 0
    return int(text) if len(text) < 10 else _HUGE


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
            _check(version)
        except InvalidParameter as exc:
            await self.refuse(exc)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
