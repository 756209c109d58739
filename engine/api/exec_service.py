"""The Exec service: docker exec's three calls, forwarded to the container service.

As the Containers servicer, it sees the container service only through a
Protocol (:class:`ExecService`); the daemon hands it
``statecharts.container.service.Containers``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import grpc

from engine.api import _fields
from engine.api.chartd.v1 import exec_pb2, exec_pb2_grpc

__all__ = ["ExecService", "ExecServicer"]


class ExecRun(Protocol):
    """An attached exec: its output as (stream, bytes), then its exit code.

    One created with ``attach_stdin`` reads a stdin (``reads_stdin``) that
    ``write_stdin`` fills (a prefix of the bytes, waiting up to ``timeout``
    for room; Conflict once it is closed) and ``close_stdin`` ends.
    """

    exit_code: int | None
    reads_stdin: bool
    tty: bool

    def __iter__(self) -> Iterator[tuple[str, bytes]]: ...

    def write_stdin(self, data: bytes, timeout: float) -> int: ...

    def close_stdin(self) -> None: ...


class ExecService(Protocol):
    """What the servicer needs of the container service: moby's exec operations."""

    def exec_create(
        self,
        ref: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        tty: bool = False,
        attach_stdin: bool = False,
        console_size: Sequence[int] | None = None,
    ) -> str:
        """A new exec in a running container; its ID (``console_size``: its TTY's first
        window, ``[height, width]``)."""
        ...

    def exec_start(self, exec_id: str, *, detach: bool = False) -> Any:
        """Run it: an :class:`ExecRun`, or None when detached."""
        ...

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        """moby's exec inspect document."""
        ...

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the window of a running exec's terminal (none: nothing to do); NotFound
        for no such exec."""
        ...


class ExecServicer(exec_pb2_grpc.ExecServicer):
    """Serves ``chartd.v1.Exec``."""

    def __init__(self, execs: ExecService) -> None:
        self.execs = execs

    def CreateExec(
        self, request: exec_pb2.CreateExecRequest, context: grpc.ServicerContext
    ) -> exec_pb2.CreateExecResponse:
        _fields.check_args(request.cmd, "cmd")
        _fields.check_map(request.env, "env", forbid_eq=True)
        exec_id = self.execs.exec_create(
            _fields.check_text(request.container, "container"),
            list(request.cmd),
            env=dict(request.env),
            working_dir=_fields.optional_text(
                request.working_dir, "working directory", limit=_fields.MAX_PATH
            ),
            # No terminal over this API (nothing would read or write it as one):
            # `tty` is accepted and an exec runs without, as it always has here.
            tty=False,
            attach_stdin=request.attach_stdin,
        )
        return exec_pb2.CreateExecResponse(id=exec_id)

    def StartExec(
        self, request: exec_pb2.StartExecRequest, context: grpc.ServicerContext
    ) -> Iterator[exec_pb2.ExecOutput]:
        exec_id = _fields.check_text(request.exec_id, "exec ID")
        run = self.execs.exec_start(exec_id, detach=request.detach)
        if run is None:
            yield exec_pb2.ExecOutput()
            return
        if run.reads_stdin:  # no stdin comes over this call: the process reads EOF
            run.close_stdin()
        for stream, data in run:
            yield exec_pb2.ExecOutput(data=data, stream=stream)
        yield exec_pb2.ExecOutput(exit_code=run.exit_code)

    def InspectExec(
        self, request: exec_pb2.InspectExecRequest, context: grpc.ServicerContext
    ) -> exec_pb2.ExecInspect:
        d = self.execs.exec_inspect(_fields.check_text(request.exec_id, "exec ID"))
        process = d["ProcessConfig"]
        return exec_pb2.ExecInspect(
            id=d["ID"],
            running=d["Running"],
            exit_code=d["ExitCode"],
            entrypoint=process["entrypoint"],
            arguments=process["arguments"],
            tty=process["tty"],
            open_stdin=d["OpenStdin"],
            container_id=d["ContainerID"],
            pid=d["Pid"],
        )
