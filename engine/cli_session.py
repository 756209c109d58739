"""A client verb's connection to the daemon, and what its errors mean for the exit status.

The global ``-H/--host`` option says where the daemon is, ``--tls-ca``
which CA signed a ``tcp://`` daemon's certificate, and ``--tls-cert`` and
``--tls-key`` the client's own, for a daemon that requires one (every verb's
``args``); a :class:`Session` opens the gRPC client for one verb. A call the
daemon refuses prints ``Error response from daemon: <message>`` on stderr and the
verb exits 1 at the end; a daemon that cannot be reached ends the verb at
once; NotModified is success, as in docker.

Every call carries the trace context of the CLI's environment: ``TRACEPARENT``
and ``TRACESTATE``, the variables OpenTelemetry's environment carrier names,
go as gRPC ``traceparent`` and ``tracestate`` metadata, so that a script
run inside a traced job (a CI step) finds its fires in that job's trace.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

from engine.api.address import default_host
from engine.api.client import Client
from engine.api.status import describe
from engine.cli_output import echo, echo_err, fail
from engine.cli_verbs import Arg, arg
from engine.errors import Category, ChartdError

__all__ = [
    "GLOBAL_OPTIONS",
    "NAMES",
    "CallFailed",
    "EndStateHeld",
    "Session",
    "each_container",
    "trace_metadata",
]

T = TypeVar("T")

GLOBAL_OPTIONS: tuple[Arg, ...] = (
    arg(
        "-H",
        "--host",
        help="Daemon to connect to: unix:///path/chartd.sock or tcp://HOST:PORT "
        "(default: $CHARTD_HOST, else the socket in the default state directory).",
    ),
    arg(
        "--tls-ca",
        help="CA certificate of a tcp:// daemon that serves TLS (default: $CHARTD_TLS_CA).",
    ),
    arg(
        "--tls-cert",
        help="Client certificate, for a daemon that requires one (--tls-client-ca) "
        "(default: $CHARTD_TLS_CERT).",
    ),
    arg("--tls-key", help="The client certificate's private key (default: $CHARTD_TLS_KEY)."),
)
"""Where the daemon is: options of ``chartd`` itself, before the verb."""

NAMES = arg("containers", nargs="+", metavar="CONTAINER", help="Container names or IDs.")
"""The containers a verb acts on, one or more."""


_AT_ONCE = 50  # docker's CLI acts on at most 50 containers at once

# W3C trace context: version-traceid-parentid-flags, lowercase hex (a later version may
# append fields). tracestate: printable ASCII, at most 32 members of a few hundred bytes.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]*)?")
_TRACESTATE = re.compile(r"[ -~]{0,8192}")


def trace_metadata(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The gRPC metadata of the trace context ``environ`` holds (TRACEPARENT, TRACESTATE).

    A value that is not W3C trace context is left out, as a propagator
    ignores it: tracing never stops a command. TRACESTATE goes only with
    a TRACEPARENT.
    """
    parent = environ.get("TRACEPARENT", "").strip()
    if not _TRACEPARENT.fullmatch(parent):
        return []
    found = [("traceparent", parent)]
    state = environ.get("TRACESTATE", "").strip()
    if state and _TRACESTATE.fullmatch(state):
        found.append(("tracestate", state))
    return found


class CallFailed(Exception):
    """A daemon error already printed; the verb exits 1 at the end.

    ``message`` is the daemon's message, which ``run`` reads its exit code from.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class EndStateHeld(Exception):
    """The daemon said NotModified: the end state holds already."""


class Session:
    """One verb's connection: calls print daemon errors the docker way."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.host = args.host or default_host()
        tls_ca = args.tls_ca or os.environ.get("CHARTD_TLS_CA")
        cert = args.tls_cert or os.environ.get("CHARTD_TLS_CERT")
        key = args.tls_key or os.environ.get("CHARTD_TLS_KEY")
        try:
            self.client = Client(
                self.host,
                tls_ca=Path(tls_ca) if tls_ca else None,
                tls_cert=Path(cert) if cert else None,
                tls_key=Path(key) if key else None,
                metadata=trace_metadata(os.environ),
            )
        except ChartdError as exc:
            fail(exc.message)
        self.failed = False
        self.prefix = ""
        """Put before a daemon's error: ``run`` says whose error it is, as docker's does."""
        self._held = threading.local()  # .lines: what a call on this thread has to say, held

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(
        self,
        method: Callable[..., T],
        request: Any,
        *,
        not_modified_ok: bool = False,
        missing_ok: bool = False,
    ) -> T:
        """``method(request)``; a daemon error is printed and raised as CallFailed.

        NotModified raises EndStateHeld when ``not_modified_ok``. NotFound, when
        ``missing_ok``, is printed but does not make the verb fail: docker's
        ``rm -f`` prints that a container does not exist and exits 0.
        """
        try:
            return method(request)
        except grpc.RpcError as exc:
            failure = describe(exc)
            if not_modified_ok and failure.category == Category.NOT_MODIFIED:
                raise EndStateHeld from None
            self.report(exc, failed=not (missing_ok and failure.category == Category.NOT_FOUND))
            raise CallFailed(failure.message) from None

    def report(self, exc: grpc.RpcError, *, failed: bool = True) -> None:
        """Print a failed call (the verb exits 1 at the end if ``failed``).

        When the daemon cannot be reached, the verb ends at once.
        """
        failure = describe(exc)
        if not failure.detailed and failure.code == grpc.StatusCode.UNAVAILABLE:
            self._say(
                f"Cannot connect to the chartd daemon at {self.host}. "
                f"Is the daemon running? ({failure.message})"
            )
            raise SystemExit(1)
        self._say(f"{self.prefix}Error response from daemon: {failure.message}")
        self.failed = self.failed or failed

    def _say(self, line: str) -> None:
        held: list[str] | None = getattr(self._held, "lines", None)
        if held is None:
            echo_err(line)
        else:
            held.append(line)

    def held(self, act: Callable[[], Any]) -> tuple[BaseException | None, list[str]]:
        """Run ``act`` with what it would print on stderr held: its exception, and the lines."""
        lines: list[str] = []
        self._held.lines = lines
        try:
            act()
        except BaseException as exc:  # handed back to the thread that prints
            return exc, lines
        finally:
            self._held.lines = None
        return None, lines

    def done(self) -> None:
        """Exit 1 if any call failed."""
        if self.failed:
            raise SystemExit(1)


def each_container(
    args: argparse.Namespace,
    act: Callable[[Session, str], Any],
    *,
    parallel: bool = True,
    failed_to: str = "",
) -> None:
    """``act`` on every name of ``args.containers``, printing each that succeeded (docker's).

    As docker's CLI does, the calls run in parallel (at most 50 at once) and
    their outcomes are printed in the order the names were given; ``start``
    acts on one container after the other (``parallel`` False), as docker's does,
    and names the ones that failed at the end (``failed_to``: ``start``).
    """
    names: Sequence[str] = args.containers
    with Session(args) as s:
        failed: list[str] = []
        if parallel and len(names) > 1:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only when needed

            with ThreadPoolExecutor(min(len(names), _AT_ONCE), "chartd-cli") as pool:
                outcomes = pool.map(lambda n: s.held(lambda: act(s, n)), names)
                for name, outcome in zip(names, outcomes, strict=True):
                    if not _print_outcome(name, *outcome):
                        failed.append(name)
        else:
            for name in names:
                if not _print_outcome(name, *s.held(lambda n=name: act(s, n))):  # type: ignore[misc]
                    failed.append(name)
        if failed_to and failed:
            echo_err(f"Error: failed to {failed_to} containers: {', '.join(failed)}")
        s.done()


def _print_outcome(name: str, error: BaseException | None, lines: list[str]) -> bool:
    """What one container's call had to say, then its name if it succeeded (docker's order);
    whether it did."""
    for line in lines:
        echo_err(line)
    if error is None or isinstance(error, EndStateHeld):
        echo(name)
        return True
    if not isinstance(error, CallFailed):
        raise error
    return False
