"""Go's builtin template functions and docker's, on plain values."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.gotemplate._values import MAX_WIDTH, Fields, StringMap, go_string, go_type, truth

# -- the functions -------------------------------------------------------------------


class CallError(Exception):
    """A function refused its arguments; the message goes after ``error calling NAME:``."""


class ArgError(Exception):
    """An argument of the wrong type: Go's ``wrong type for value`` (no ``error calling``)."""


def json_text(value: Any) -> str:
    """docker's ``json``: encoding/json, HTML characters left alone."""
    if isinstance(value, Fields):
        value = dict(sorted(value.plain().items()))
    try:
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
        )
    except ValueError as exc:
        raise CallError(f"json: unsupported value: {exc}") from None
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _want(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if isinstance(value, bool) and kind in (int, (int, float)):
        raise ArgError(f"wrong type for value; expected {name}; got bool")
    if not isinstance(value, kind):
        raise ArgError(f"wrong type for value; expected {name}; got {go_type(value)}")
    return value


def _index(item: Any, *indexes: Any) -> Any:
    for i in indexes:
        if item is None:
            raise CallError("index of untyped nil")
        if isinstance(item, Mapping):
            if not isinstance(i, str):
                raise CallError(f"value has type {go_type(i)}; should be string")
            item = item.get(i, "" if isinstance(item, StringMap) else None)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(i, int) or isinstance(i, bool):
                raise CallError(f"cannot index slice/array with type {go_type(i)}")
            if not 0 <= i < len(item):
                raise CallError(f"index out of range: {i}")
            item = (
                item[i]
                if not isinstance(item, str)
                else item.encode()[i]
                if i < len(item.encode())
                else 0
            )
        else:
            raise CallError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *bounds: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise CallError(f"can't slice item of type {go_type(item)}")
    if len(bounds) > 3 or (isinstance(item, str) and len(bounds) > 2):
        raise CallError("too many slice indexes")
    numbers = [_want(b, int, "int") for b in bounds]
    start = numbers[0] if numbers else 0
    end = numbers[1] if len(numbers) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise CallError(f"index out of range: {start if start < 0 or start > len(item) else end}")
    return item[start:end]


def _length(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, (list, tuple, Mapping)):
        return len(item)
    raise CallError(f"len of type {go_type(item)}")


def _comparable(a: Any, b: Any) -> None:
    def kind(v: Any) -> str:
        return "int" if isinstance(v, int) and not isinstance(v, bool) else go_type(v)

    if kind(a) != kind(b) and a is not None and b is not None:
        raise CallError("incompatible types for comparison")


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise CallError("missing argument for comparison")
    for other in others:
        _comparable(first, other)
        if first == other:
            return True
    return False


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        _comparable(a, b)
        if not isinstance(a, (int, float, str)) or isinstance(a, bool):
            raise CallError("invalid type for comparison")
        return op(a, b)

    return compare


def _sprint(*args: Any) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_string(a))
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _sprintf(fmt: Any, *args: Any) -> str:
    _want(fmt, str, "string")
    values = list(args)
    out: list[str] = []
    last = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[last : m.start()])
        last = m.end()
        flags, width, precision, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if (width and int(width) > MAX_WIDTH) or (precision and int(precision) > MAX_WIDTH):
            raise CallError("printf width or precision too large")
        if not values:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(values.pop(0), flags, width, precision, verb))
    out.append(fmt[last:])
    if values:
        out.append("%!(EXTRA " + ", ".join(f"{go_type(v)}={go_string(v)}" for v in values) + ")")
    return "".join(out)


def _format_one(value: Any, flags: str, width: str | None, precision: str | None, verb: str) -> str:
    """One ``printf`` verb: the numeric ones through Python's format, the rest padded."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if verb in "dxXob" and isinstance(value, int) and number:
        return format(value, flags.replace("#", "") + (width or "") + verb)
    if verb in "feEgG" and number:
        return format(
            float(value), flags.replace("#", "") + (width or "") + f".{precision or 6}" + verb
        )
    if (
        verb in "sv"
        or (verb == "t" and isinstance(value, bool))
        or (verb == "q" and isinstance(value, str))
    ):
        text = json.dumps(value, ensure_ascii=False) if verb == "q" else go_string(value)
        text = text[: int(precision)] if precision and verb != "q" else text
        size = int(width or 0)
        return text.ljust(size) if "-" in flags else text.rjust(size)
    return f"%!{verb}({go_type(value)}={go_string(value)})"


def _title(s: Any) -> str:
    _want(s, str, "string")
    out, previous = [], " "
    for ch in s:
        separator = not (previous.isalnum() or previous == "_")
        out.append(ch.upper() if separator else ch)
        previous = ch
    return "".join(out)


def _pad(source: Any, prefix: Any, suffix: Any) -> str:
    text: str = _want(source, str, "string")
    before, after = _want(prefix, int, "int"), _want(suffix, int, "int")
    if max(before, after) > MAX_WIDTH:
        raise CallError(f"pad of more than {MAX_WIDTH} spaces")
    if not text:
        return text
    return " " * max(0, int(before)) + text + " " * max(0, int(after))


def _truncate(source: Any, length: Any) -> str:
    _want(source, str, "string")
    n = _want(length, int, "int")
    data = source.encode()
    if len(data) < n:
        return str(source)
    if n < 0:
        raise CallError(f"slice bounds out of range [:{n}]")
    return str(data[:n].decode("utf-8", "replace"))


def _join(items: Any, sep: Any) -> str:
    _want(sep, str, "string")
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ArgError(f"wrong type for value; expected []string; got {go_type(items)}")
    return str(sep).join(items)


def _split(s: Any, sep: Any) -> list[str]:
    _want(s, str, "string")
    _want(sep, str, "string")
    if sep == "":
        return list(str(s))
    return str(s).split(str(sep))


def _string_fn(fn: Callable[[str], str]) -> Callable[[Any], str]:
    def call(s: Any) -> str:
        return fn(_want(s, str, "string"))

    return call


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: next((v for v in a if not truth(v)), a[-1]),
    "or": lambda *a: next((v for v in a if truth(v)), a[-1]),
    "not": lambda a: not truth(a),
    "len": _length,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b),
    "gt": _ordered(lambda a, b: a > b),
    "ge": _ordered(lambda a, b: a >= b),
    "print": _sprint,
    "printf": _sprintf,
    "println": lambda *a: " ".join(go_string(v) for v in a) + "\n",
    "json": json_text,
    "split": _split,
    "join": _join,
    "title": _title,
    "lower": _string_fn(str.lower),
    "upper": _string_fn(str.upper),
    "pad": _pad,
    "truncate": _truncate,
}
"""Go's builtins and docker's ``templates`` functions, by name."""

ARITY: dict[str, tuple[int, int | None]] = {
    "and": (1, None), "or": (1, None), "not": (1, 1), "len": (1, 1), "index": (1, None),
    "slice": (1, None), "eq": (1, None), "ne": (2, 2), "lt": (2, 2), "le": (2, 2),
    "gt": (2, 2), "ge": (2, 2), "print": (0, None), "printf": (1, None), "println": (0, None),
    "json": (1, 1), "split": (2, 2), "join": (2, 2), "title": (1, 1), "lower": (1, 1),
    "upper": (1, 1), "pad": (3, 3), "truncate": (2, 2),
}  # fmt: skip

# docker's HeaderFunctions: a table's header row keeps each column's name.
HEADER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **FUNCTIONS,
    **{
        name: (lambda v, *_: v)
        for name in ("json", "split", "join", "title", "lower", "upper", "truncate")
    },
}
