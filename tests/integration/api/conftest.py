"""A real ``chartd serve`` in a subprocess, on a unix socket in a temporary state directory.

Tests drive it through the ``chartd`` CLI (subprocesses too) and through a
gRPC client. A daemon is shared by the tests of a module; each test names
its containers uniquely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker as docker_sdk
import pytest
from api_daemon import Daemon
from docker_side import DockerCli

from engine.api import Client


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon shared by one test module; it must stop cleanly at the end."""
    d = Daemon(tmp_path_factory.mktemp("chartd"))
    d.start()
    yield d
    assert d.stop() == 0, d.logs()
    assert not d.socket.exists(), "the socket outlived the daemon"


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with daemon.client() as c:
        yield c


@pytest.fixture(scope="module")
def docker(
    daemon: Daemon, prerequisites: Any, tmp_path_factory: pytest.TempPathFactory
) -> DockerCli:
    """The real docker CLI on the module's daemon (its Engine API socket)."""
    command = prerequisites.command("docker", "docker.io")
    return DockerCli(command, daemon, tmp_path_factory.mktemp("docker-config"))


@pytest.fixture
def sdk(daemon: Daemon) -> Iterator[docker_sdk.DockerClient]:
    """The Docker SDK for Python on the module's daemon (its Engine API socket)."""
    client = docker_sdk.DockerClient(
        base_url=f"unix://{daemon.state_dir / 'docker.sock'}", version="auto", timeout=60
    )
    yield client
    client.close()
