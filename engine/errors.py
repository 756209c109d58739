"""The one error taxonomy of chartd.

Every error that chartd raises on purpose is a :class:`ChartdError`. Its
subclass says *what kind* of failure it is, in the categories of moby's and
containerd's ``errdefs``, so that the gRPC API, the CLI and embedding code
can react to the kind without parsing messages::

    ChartdError                      category
    ├── NotFound                     not_found          the named thing does not exist
    ├── InvalidParameter             invalid_parameter  the request itself is wrong
    │   └── ChartError               invalid_parameter  a chart document is malformed
    ├── Conflict                     conflict           not allowed in the current state
    ├── NotModified                  not_modified       already in the requested state
    ├── Forbidden                    forbidden          allowed for nobody, ever
    ├── Unavailable                  unavailable        try again later (e.g. database down)
    ├── NotImplemented               not_implemented    the operation does not exist here
    ├── Cancelled                    cancelled          the caller gave up
    ├── DeadlineExceeded             deadline_exceeded  it took too long
    └── System                       system             a fault inside chartd or below it

The message is written for the person who reads it: it says what was wrong
and, where it can, what to do instead (moby's "cannot start a paused
container, try unpause instead" is the model). Context is added by wrapping
with :meth:`ChartdError.wrap`, which keeps the category, the way moby's
``errdefs`` helpers never re-classify an error that already has a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "Cancelled",
    "Category",
    "ChartError",
    "ChartdError",
    "Conflict",
    "DeadlineExceeded",
    "Forbidden",
    "InvalidParameter",
    "NotFound",
    "NotImplemented",
    "NotModified",
    "Problem",
    "System",
    "Unavailable",
    "error_for",
]


class Category(StrEnum):
    """The kind of an error, as charts spell it in ``rejections[].error``."""

    NOT_FOUND = "not_found"
    INVALID_PARAMETER = "invalid_parameter"
    CONFLICT = "conflict"
    NOT_MODIFIED = "not_modified"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"
    NOT_IMPLEMENTED = "not_implemented"
    CANCELLED = "cancelled"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    SYSTEM = "system"


class ChartdError(Exception):
    """Root of every error chartd raises on purpose.

    ``message`` is the text a user reads; ``category`` (a class attribute)
    is what programs branch on.
    """

    category: ClassVar[Category] = Category.SYSTEM

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def wrap(self, context: str) -> ChartdError:
        """A new error of the same class whose message is ``context: message``."""
        wrapped = self.reworded(f"{context}: {self.message}")
        wrapped.__cause__ = self
        return wrapped

    def reworded(self, message: str) -> ChartdError:
        """A new error of the same class and attributes, with ``message`` instead."""
        other = type(self).__new__(type(self))
        ChartdError.__init__(other, message)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k != "message"})
        return other

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotFound(ChartdError):
    """The named entity, chart, state or event does not exist."""

    category = Category.NOT_FOUND


class InvalidParameter(ChartdError):
    """The request is malformed: a bad name, signal, policy or parameter."""

    category = Category.INVALID_PARAMETER


class Conflict(ChartdError):
    """The request is well formed but not allowed in the current state."""

    category = Category.CONFLICT


class NotModified(ChartdError):
    """The entity is already in the requested state; nothing was done.

    Callers that only want the end state (the CLI, as docker's) treat it as
    success.
    """

    category = Category.NOT_MODIFIED


class Forbidden(ChartdError):
    """The operation is refused whatever the state (not a state conflict)."""

    category = Category.FORBIDDEN


class Unavailable(ChartdError):
    """A dependency (the database, the runtime) cannot be reached; retry later."""

    category = Category.UNAVAILABLE


class NotImplemented(ChartdError):
    """The operation is not supported by this chart, driver or build."""

    category = Category.NOT_IMPLEMENTED


class Cancelled(ChartdError):
    """The caller cancelled the operation."""

    category = Category.CANCELLED


class DeadlineExceeded(ChartdError):
    """The operation did not finish in the time it was given."""

    category = Category.DEADLINE_EXCEEDED


class System(ChartdError):
    """A fault inside chartd or in what it drives; not the caller's doing."""

    category = Category.SYSTEM


Problem = tuple[str, str]
"""One defect of a chart document: (path in the document, what is wrong)."""


class ChartError(InvalidParameter):
    """A chart document is malformed.

    ``problems`` lists every defect found, each as (path, message) where the
    path names the place in the document, e.g. ``transitions[3].to``. The
    message shows them one a line, so the first line of ``str(error)`` is
    already actionable.
    """

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        where = f"chart {source}" if source else "chart"
        if len(self.problems) == 1:
            path, text = self.problems[0]
            message = f"invalid {where}: {_join(path, text)}"
        else:
            lines = "\n".join(f"  {_join(path, text)}" for path, text in self.problems)
            message = f"invalid {where}: {len(self.problems)} problems\n{lines}"
        super().__init__(message)


def _join(path: str, text: str) -> str:
    return f"{path}: {text}" if path else text


_BY_CATEGORY: dict[Category, type[ChartdError]] = {
    cls.category: cls
    for cls in (
        NotFound,
        InvalidParameter,
        Conflict,
        NotModified,
        Forbidden,
        Unavailable,
        NotImplemented,
        Cancelled,
        DeadlineExceeded,
        System,
    )
}


def error_for(category: Category | str, message: str) -> ChartdError:
    """The error of ``category`` (a :class:`Category` or its string) with ``message``.

    Raises ValueError for a string that names no category.
    """
    return _BY_CATEGORY[Category(category)](message)
