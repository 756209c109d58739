"""Checks of request fields at the API's edge, before anything is looked up.

The engine and the container service check meaning (a name's characters, a
signal, a restart policy) with moby's messages; these checks bound what may
reach them at all: lengths, NUL and control characters, number ranges. A
message never echoes more than a short prefix of what it refuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from engine.errors import InvalidParameter

__all__ = [
    "MAX_NAME",
    "check_args",
    "check_map",
    "check_struct",
    "check_text",
    "decode_json",
    "optional_text",
    "page_token",
    "sequence",
]

MAX_NAME = 256  # names and IDs: 253 characters at most, a leading "/", some slack
MAX_ARG = 128 * 1024  # Linux's MAX_ARG_STRLEN: execve refuses a longer argument
MAX_PATH = 4096  # PATH_MAX
# An entity's data or an event's params, encoded: an entity must fit in a response with
# room to spare, and one request may not grow the database by more.
MAX_STRUCT = 1024 * 1024
_SEQ_MAX = 2**63 - 1  # the database's integer


def _show(value: str) -> str:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return repr(shown)


def check_text(value: str, what: str, *, limit: int = MAX_NAME, required: bool = True) -> str:
    """``value`` if it is non-empty (unless not ``required``), short enough and printable."""
    if not value:
        if required:
            raise InvalidParameter(f"{what} is required and may not be empty")
        return value
    if len(value) > limit:
        raise InvalidParameter(
            f"{what} is too long: {len(value)} characters, at most {limit} ({_show(value)})"
        )
    if "\x00" in value or not value.isprintable():
        raise InvalidParameter(f"{what} may not contain NUL or control characters: {_show(value)}")
    return value


def optional_text(value: str, what: str, *, limit: int = MAX_NAME) -> str | None:
    """None for an empty field, else the checked value."""
    return check_text(value, what, limit=limit, required=False) or None


def check_args(args: Iterable[str], what: str) -> None:
    """Check command arguments or environment entries for execve."""
    for i, arg in enumerate(args):
        if len(arg) > MAX_ARG:
            raise InvalidParameter(
                f"{what}[{i}] is too long: {len(arg)} characters, at most {MAX_ARG}"
            )
        if "\x00" in arg:
            raise InvalidParameter(f"{what}[{i}] may not contain a NUL character")


def check_map(
    values: Mapping[str, str], what: str, *, key_limit: int = MAX_NAME, forbid_eq: bool = False
) -> None:
    """Keys non-empty, bounded, printable (and without ``=`` for env); values without NUL."""
    for key, val in values.items():
        check_text(key, f"{what} key", limit=key_limit)
        if forbid_eq and "=" in key:
            raise InvalidParameter(f"{what} key may not contain '=': {_show(key)}")
        if "\x00" in val:
            raise InvalidParameter(f"{what} value of {_show(key)} may not contain NUL")
        if len(val) > MAX_ARG:
            raise InvalidParameter(
                f"{what} value of {_show(key)} is too long: {len(val)} characters, "
                f"at most {MAX_ARG}"
            )


def check_struct(value: Message, what: str) -> None:
    """A Struct (an entity's data, an event's params) of at most MAX_STRUCT bytes."""
    size = value.ByteSize()
    if size > MAX_STRUCT:
        raise InvalidParameter(f"{what} is too large: {size} bytes, at most {MAX_STRUCT}")


def sequence(value: int, what: str) -> int:
    """An event sequence number the database can hold."""
    if value > _SEQ_MAX:
        raise InvalidParameter(f"{what} is out of range: {value} (at most {_SEQ_MAX})")
    return value


def page_token(token: str) -> int:
    """The position a page token stands for (empty: the start)."""
    if not token:
        return 0
    if len(token) > 20 or not token.isdigit():
        raise InvalidParameter(f"invalid page token {_show(token)}: pass next_page_token back")
    return sequence(int(token), "page token")


def timestamp_ns(message: Message, field: str, what: str) -> int | None:
    """A Timestamp field as nanoseconds since the epoch, None if unset; InvalidParameter if
    it is not a valid time (nanos outside 0..999,999,999, seconds outside year 1..9999)."""
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    if not 0 <= stamp.nanos <= 999_999_999 or not _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS:
        raise InvalidParameter(f"{what} is not a valid time: {stamp.seconds}s {stamp.nanos}ns")
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


# The range protobuf's Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799


_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_json(raw: bytes, what: str) -> Any:
    """``raw`` decoded as JSON as Go decodes it; InvalidParameter starting with ``what``.

    Nesting too deep for the decoder is bad JSON (Go's decoder has a depth limit
    too), not a failure. A ``\\u`` escape of a lone surrogate half, which Python
    keeps but no UTF-8 output can hold, becomes U+FFFD, as Go's decoder makes it:
    kept, it would fail every later answer that shows it.
    """
    try:
        found = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameter(f"{what}: {exc}") from None
    except RecursionError:
        raise InvalidParameter(f"{what}: nested too deeply") from None
    return _go_strings(found) if _SURROGATE_ESCAPE.search(raw) else found


def _go_strings(found: Any) -> Any:
    """``found`` with each lone surrogate in its strings and keys replaced (in place)."""
    if isinstance(found, str):
        return _SURROGATE.sub("\ufffd", found)
    stack = [found]
    while stack:  # not recursive: as deep as the decoder went, without its frames
        item = stack.pop()
        pairs: list[tuple[Any, Any]]
        if isinstance(item, list):
            pairs = list(enumerate(item))
        elif isinstance(item, dict):
            pairs = [(_SURROGATE.sub("\ufffd", k), v) for k, v in item.items()]
            item.clear()
        else:
            continue
        for key, value in pairs:
            item[key] = _SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value
            stack.append(value)
    return found
