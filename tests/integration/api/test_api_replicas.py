"""Two real ``chartd serve`` daemons on one PostgreSQL database (docs/replicas.md).

Each daemon is a node; a container belongs to the node whose daemon created
it. The other daemon does not list it, refuses to act on it with
FAILED_PRECONDITION naming the owner, and leaves it alone while its owner is
down; the owner's restart reconciles it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from api_daemon import Daemon, failure

from engine.api.chartd.v1 import containers_pb2 as c

OWNED = "web belongs to node 'alpha', not this node ('beta'): fire 'stop' on node 'alpha'"


@pytest.fixture
def nodes(pg_url: str, tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    """Daemons of nodes alpha and beta on one database, each with its state directory."""
    alpha, beta = Daemon(tmp_path / "alpha"), Daemon(tmp_path / "beta")
    started = []
    try:
        for daemon, node in ((alpha, "alpha"), (beta, "beta")):
            daemon.start("--db", pg_url, "--node", node)
            started.append(daemon)
        yield alpha, beta
    finally:
        for daemon in started:
            assert daemon.stop() == 0, daemon.logs()


def _names(daemon: Daemon, *flags: str) -> list[str]:
    """The names ``chartd ps FLAGS`` lists on this daemon."""
    ps = daemon.cli("ps", *flags, "--format", "{{.Names}}")
    assert ps.returncode == 0, ps.stderr
    return sorted(ps.stdout.split())


def _status(daemon: Daemon, name: str) -> str:
    with daemon.client() as client:
        found = client.containers.Inspect(c.InspectContainerRequest(container=name))
    return str(found.state.status)


def test_a_container_belongs_to_the_daemon_that_created_it(
    nodes: tuple[Daemon, Daemon], pg_url: str
) -> None:
    alpha, beta = nodes
    web = alpha.cli("run", "-d", "--name", "web", "sleep", "600")
    assert web.returncode == 0, web.stderr
    assert beta.cli("run", "-d", "--name", "cache", "sleep", "600").returncode == 0

    # Each daemon lists what it runs, as docker's ps does.
    assert _names(alpha, "-a") == ["web"]
    assert _names(beta, "-a") == ["cache"]
    # The other node's container: refused, naming its node; the name stays taken.
    stop = beta.cli("stop", "web")
    assert stop.returncode == 1 and OWNED in stop.stderr and stop.stdout == ""
    with beta.client() as client, pytest.raises(grpc.RpcError) as refused:
        client.containers.Stop(c.StopContainerRequest(container="web", timeout=1))
    code, reason, message = failure(refused.value)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONFLICT")
    assert OWNED in message
    logs = beta.cli("logs", "web")  # the log file is on alpha's machine
    assert logs.returncode == 1
    assert "the logs of web are kept on node 'alpha', not this node ('beta')" in logs.stderr
    taken = beta.cli("run", "-d", "--name", "web", "sleep", "1")
    assert taken.returncode == 125 and 'name "/web" is already in use' in taken.stderr

    # The owner dies: the other node leaves its container as it was, and refuses still.
    assert alpha.stop(signal.SIGKILL) == -signal.SIGKILL
    assert OWNED in beta.cli("stop", "web").stderr
    assert _status(beta, "web") == "running"

    # The owner comes back (its node name kept in its state directory): its restore
    # finds the process left by the killed daemon, kills it, records the exit.
    alpha.start("--db", pg_url)
    assert _status(alpha, "web") == "exited"
    assert alpha.cli("rm", "web").returncode == 0
    assert _names(beta) == ["cache"]
