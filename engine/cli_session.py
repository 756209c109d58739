"""A client verb's connection to the daemon, and what its errors mean for the exit status.

The global ``-H/--host`` option says where the daemon is, ``--tls-ca``
which CA signed a ``tcp://`` daemon's certificate and ``--tls-cert`` and
``--tls-key`` the client's own (for a daemon that requires one); a
:class:`Session` opens the gRPC client for one verb. A call the daemon
refuses prints ``Error response from daemon: <message>`` on stderr and the
verb exits 1 at the end; a daemon that cannot be reached ends the verb at
once; NotModified is success, as in docker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import typer

from engine.api import Client, default_host, describe
from engine.cli_output import err, out
from engine.errors import Category, ChartdError

__all__ = [
    "CallFailed",
    "DaemonAddress",
    "EndStateHeld",
    "NamesArg",
    "Session",
    "each_container",
    "global_options",
]

T = TypeVar("T")

NamesArg = Annotated[list[str], typer.Argument(help="Container names or IDs.")]


@dataclass(frozen=True, slots=True)
class DaemonAddress:
    """Where the verbs find the daemon, and how they prove who they are: the global options."""

    host: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


def global_options(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            "-H",
            "--host",
            envvar="CHARTD_HOST",
            help="Daemon to connect to: unix:///path/chartd.sock or tcp://HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca",
            envvar="CHARTD_TLS_CA",
            help="CA certificate of a tcp:// daemon that serves TLS.",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            envvar="CHARTD_TLS_CERT",
            help="Client certificate, for a daemon that requires one (--tls-client-ca).",
            show_default=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            envvar="CHARTD_TLS_KEY",
            help="The client certificate's private key.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """An explicit state-machine engine for control planes."""
    ctx.obj = DaemonAddress(host=host, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)


class CallFailed(Exception):
    """A daemon error already printed; the verb exits 1 at the end."""


class EndStateHeld(Exception):
    """The daemon said NotModified: the end state holds already."""


class Session:
    """One verb's connection: calls print daemon errors the docker way."""

    def __init__(self, ctx: typer.Context) -> None:
        address = ctx.obj if isinstance(ctx.obj, DaemonAddress) else DaemonAddress()
        self.host = address.host or default_host()
        try:
            self.client = Client(
                self.host, tls_ca=address.tls_ca, tls_cert=address.tls_cert, tls_key=address.tls_key
            )
        except ChartdError as exc:
            err.print(f"error: {exc.message}", markup=False)
            raise typer.Exit(1) from None
        self.failed = False

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: Callable[..., T], request: Any, *, not_modified_ok: bool = False) -> T:
        """``method(request)``; a daemon error is printed and raised as CallFailed."""
        try:
            return method(request)
        except grpc.RpcError as exc:
            if not_modified_ok and describe(exc).category == Category.NOT_MODIFIED:
                raise EndStateHeld from None
            self.report(exc)
            raise CallFailed from None

    def report(self, exc: grpc.RpcError) -> None:
        """Print a failed call; exit at once when the daemon cannot be reached."""
        failure = describe(exc)
        if not failure.detailed and failure.code == grpc.StatusCode.UNAVAILABLE:
            err.print(
                f"Cannot connect to the chartd daemon at {self.host}. "
                f"Is the daemon running? ({failure.message})",
                markup=False,
            )
            raise typer.Exit(1)
        err.print(f"Error response from daemon: {failure.message}", markup=False)
        self.failed = True

    def done(self) -> None:
        """Exit 1 if any call failed."""
        if self.failed:
            raise typer.Exit(1)


def each_container(
    ctx: typer.Context, names: Sequence[str], act: Callable[[Session, str], Any]
) -> None:
    """``act`` on every name, printing each name that succeeded (docker's output)."""
    with Session(ctx) as s:
        for name in names:
            try:
                act(s, name)
            except CallFailed:
                continue
            except EndStateHeld:
                pass
            out.print(name, markup=False)
        s.done()
