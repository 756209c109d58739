"""Runtimes for tests: FaultRuntime (fails any call on demand) and, from
:mod:`statecharts.container.fake`, FakeRuntime (in memory).

``FaultRuntime(inner)`` wraps any :class:`~statecharts.container.runtime.Runtime`
and records every call as ``(method, container)``; ``fail(...)`` makes a
method raise instead, on its Nth call, for one container, once or several
times, before the inner call or after it took effect::

    runtime = FaultRuntime(FakeRuntime())
    runtime.fail("start_task", error=ExecFailed('exec: "x": ...', exit_code=127))
    runtime.fail("delete_task", times=None)           # every compensation fails
    runtime.fail("create_task", nth=2, after=True)    # 2nd call: the task exists, yet it fails
    ...
    assert runtime.calls[-2:] == [("delete_task", "c1"), ("delete", "c1")]

``FakeRuntime`` keeps the same contract as the process runtime (same states,
errors and messages, exit events exactly once) with no process at all: a
task runs until it is killed or told to ``exit(container_id, code)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.errors import ChartdError, InvalidParameter, System
from statecharts.container.fake import STDIN_ROOM, FakeRuntime
from statecharts.container.outtap import TAP_BOUND, OutputTap
from statecharts.container.runtime import (
    ContainerSpec,
    ExitCallback,
    ExitEvent,
    Runtime,
    TaskInfo,
)

__all__ = ["STDIN_ROOM", "Call", "FakeRuntime", "Fault", "FaultRuntime"]

METHODS = frozenset(
    {
        "create",
        "delete",
        "create_task",
        "start_task",
        "kill",
        "write_stdin",
        "close_stdin",
        "resize",
        "tap",
        "pause",
        "resume",
        "delete_task",
        "task",
        "tasks",
        "wait",
        "subscribe",
        "close",
    }
)
"""The Runtime methods FaultRuntime records and can fail."""

# -- FaultRuntime ----------------------------------------------------------------------


class Call(NamedTuple):
    """One call seen by a FaultRuntime: the method and the container (``None`` if none)."""

    method: str
    container: str | None


@dataclass(eq=False)
class Fault:
    """One armed fault. ``seen`` counts matching calls, ``fired`` the failures raised."""

    method: str
    error: Callable[[], BaseException]
    times: int | None
    container: str | None
    nth: int
    after: bool
    seen: int = 0
    fired: int = 0

    def matches(self, call: Call) -> bool:
        return call.method == self.method and self.container in (None, call.container)

    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times


class FaultRuntime:
    """A Runtime that forwards to ``inner`` and fails any method on demand.

    ``calls`` lists every call in order, as :class:`Call` ``(method,
    container)``, failed ones included; ``failures`` lists the calls that
    were failed. Thread-safe.
    """

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self.failures: list[Call] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def fail(
        self,
        method: str,
        error: BaseException | Callable[[], BaseException] | None = None,
        *,
        times: int | None = 1,
        container: str | None = None,
        nth: int = 1,
        after: bool = False,
    ) -> Fault:
        """Make ``method`` raise ``error`` (default System ``injected fault: ...``).

        Counting only calls for ``container`` (if given), the ``nth`` such call
        from now on fails, and so do the ones after it until ``times``
        failures were raised (``None``: forever). ``after=True`` calls the
        inner runtime first, so the effect took place but the caller sees an
        error (a step whose outcome was lost). ``error`` is an exception (a
        fresh copy of it is raised each time) or a function making one.
        Faults are checked in the order they were armed; the first that
        fires wins.
        """
        if method not in METHODS:
            raise InvalidParameter(f"not a Runtime method: {method!r}")
        if nth < 1 or (times is not None and times < 1):
            raise InvalidParameter("nth and times count from 1")
        fault = Fault(method, _factory(method, container, error), times, container, nth, after)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault (the call record is kept)."""
        with self._lock:
            self._faults.clear()

    def calls_of(self, *methods: str) -> list[Call]:
        """The recorded calls of ``methods``, in order."""
        with self._lock:
            return [call for call in self.calls if call.method in methods]

    # -- the Runtime protocol ----------------------------------------------------------

    def create(self, spec: ContainerSpec) -> None:
        self._call("create", spec.id, lambda: self.inner.create(spec))

    def delete(self, container_id: str) -> None:
        self._call("delete", container_id, lambda: self.inner.delete(container_id))

    def prepare_task(self, container_id: str) -> None:
        self.inner.prepare_task(container_id)  # a hint: no fault to inject, no call to record

    def create_task(self, container_id: str) -> TaskInfo:
        result: TaskInfo = self._call(
            "create_task", container_id, lambda: self.inner.create_task(container_id)
        )
        return result

    def start_task(self, container_id: str) -> TaskInfo:
        result: TaskInfo = self._call(
            "start_task", container_id, lambda: self.inner.start_task(container_id)
        )
        return result

    def kill(self, container_id: str, signal: int) -> None:
        self._call("kill", container_id, lambda: self.inner.kill(container_id, signal))

    def write_stdin(self, container_id: str, data: bytes, timeout: float) -> int:
        result: int = self._call(
            "write_stdin", container_id, lambda: self.inner.write_stdin(container_id, data, timeout)
        )
        return result

    def close_stdin(self, container_id: str) -> None:
        self._call("close_stdin", container_id, lambda: self.inner.close_stdin(container_id))

    def resize(self, container_id: str, height: int, width: int) -> None:
        self._call("resize", container_id, lambda: self.inner.resize(container_id, height, width))

    def tap(self, container_id: str, bound: int = TAP_BOUND) -> OutputTap:
        result: OutputTap = self._call(
            "tap", container_id, lambda: self.inner.tap(container_id, bound)
        )
        return result

    def __getattr__(self, name: str) -> Any:
        # Beyond the protocol, a ProcessRuntime's execs are the inner runtime's (never failed).
        if name in ("exec_process", "execs"):
            return getattr(self.inner, name)
        raise AttributeError(name)

    def pause(self, container_id: str) -> None:
        self._call("pause", container_id, lambda: self.inner.pause(container_id))

    def resume(self, container_id: str) -> None:
        self._call("resume", container_id, lambda: self.inner.resume(container_id))

    def delete_task(self, container_id: str) -> ExitEvent | None:
        result: ExitEvent | None = self._call(
            "delete_task", container_id, lambda: self.inner.delete_task(container_id)
        )
        return result

    def task(self, container_id: str) -> TaskInfo | None:
        result: TaskInfo | None = self._call(
            "task", container_id, lambda: self.inner.task(container_id)
        )
        return result

    def tasks(self) -> list[TaskInfo]:
        result: list[TaskInfo] = self._call("tasks", None, self.inner.tasks)
        return result

    def processes(self, container_id: str) -> list[int]:
        result: list[int] = self._call(
            "processes", container_id, lambda: self.inner.processes(container_id)
        )
        return result

    def wait(self, container_id: str, timeout: float | None = None) -> ExitEvent | None:
        result: ExitEvent | None = self._call(
            "wait", container_id, lambda: self.inner.wait(container_id, timeout)
        )
        return result

    def subscribe(self, callback: ExitCallback) -> None:
        self._call("subscribe", None, lambda: self.inner.subscribe(callback))

    def close(self) -> None:
        self._call("close", None, self.inner.close)

    # -- internals ---------------------------------------------------------------------

    def _call(self, method: str, container: str | None, forward: Callable[[], Any]) -> Any:
        call = Call(method, container)
        with self._lock:
            self.calls.append(call)
            fault = None
            for candidate in self._faults:
                if candidate.spent() or not candidate.matches(call):
                    continue
                candidate.seen += 1
                if fault is None and candidate.seen >= candidate.nth:
                    fault = candidate
                    fault.fired += 1
                    self.failures.append(call)
        if fault is None:
            return forward()
        if fault.after:
            forward()
        raise fault.error()


def _factory(
    method: str,
    container: str | None,
    error: BaseException | Callable[[], BaseException] | None,
) -> Callable[[], BaseException]:
    if error is None:
        where = f" ({container})" if container else ""
        return lambda: System(f"injected fault: {method}{where}")
    if isinstance(error, BaseException):
        return lambda: _copy(error)
    return error


def _copy(error: BaseException) -> BaseException:
    # A fresh instance per raise, so tracebacks and __context__ do not pile up.
    if isinstance(error, ChartdError):
        fresh = type(error).__new__(type(error))
        fresh.__dict__.update(error.__dict__)
        fresh.args = error.args
        return fresh
    return type(error)(*error.args)


if TYPE_CHECKING:  # both keep the Runtime contract (checked by mypy, free at run time)
    _fake: Runtime = FakeRuntime()
    _faulty: Runtime = FaultRuntime(_fake)
