"""The Docker SDK for Python drives chartd; the gRPC API sees the same containers."""

from __future__ import annotations

import time

import docker as docker_sdk
import pytest
from api_daemon import Daemon
from docker.errors import APIError, NotFound

from engine.api.chartd.v1 import containers_pb2 as c


def test_a_lifecycle_through_the_sdk(sdk: docker_sdk.DockerClient) -> None:
    assert sdk.ping() is True
    assert sdk.version()["ApiVersion"] == "1.51"
    box = sdk.containers.run(
        "alpine", ["sh", "-c", "echo ready; exec sleep 60"], name="sdkweb", detach=True,
        labels={"tier": "web"}, environment={"A": "1"}, stop_signal="SIGINT",
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
        healthcheck={"Test": ["CMD", "true"], "Interval": 1_000_000_000},
    )  # fmt: skip
    box.reload()
    assert (box.status, box.name, box.labels) == ("running", "sdkweb", {"tier": "web"})
    config = box.attrs["Config"]
    assert (config["Image"], config["Env"], config["StopSignal"]) == ("alpine", ["A=1"], "SIGINT")
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 1_000_000_000}
    policy = box.attrs["HostConfig"]["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert [x.name for x in sdk.containers.list(filters={"label": "tier=web"})] == ["sdkweb"]

    deadline = time.monotonic() + 60
    while box.logs() != b"ready\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    box.pause()
    box.reload()
    assert box.status == "paused"
    with pytest.raises(APIError) as refused:
        box.start()
    assert refused.value.status_code == 409
    assert refused.value.explanation == "cannot start a paused container, try unpause instead"
    box.unpause()
    box.stop(timeout=1)
    assert box.wait() == {"StatusCode": 130}  # SIGINT, the stop signal
    box.restart(timeout=1)
    killed = time.time()
    box.kill(signal="SIGUSR1")
    # SIGUSR1 is not the stop signal: on-failure restarts it (as moby does), and its exit
    # may be recorded before a wait(not-running) begins, which would then wait for the
    # next exit. The die event says its code either way.
    dies = sdk.events(since=killed, decode=True, filters={"container": "sdkweb", "event": "die"})
    try:
        assert next(iter(dies))["Actor"]["Attributes"]["exitCode"] == "138"
    finally:
        dies.close()
    box.rename("sdkweb2")
    box.reload()
    assert box.name == "sdkweb2"
    box.remove(force=True)
    with pytest.raises(NotFound) as missing:
        sdk.containers.get("sdkweb2")
    assert missing.value.explanation == "No such container: sdkweb2"


def test_run_without_detach_returns_the_output(sdk: docker_sdk.DockerClient) -> None:
    assert sdk.containers.run("alpine", ["echo", "hi"], remove=True) == b"hi\n"
    with pytest.raises(docker_sdk.errors.ContainerError) as failed:
        sdk.containers.run("alpine", ["sh", "-c", "exit 5"], name="sdkfail")
    assert failed.value.exit_status == 5
    sdk.containers.get("sdkfail").remove()


def test_grpc_and_engine_api_side_by_side(daemon: Daemon, sdk: docker_sdk.DockerClient) -> None:
    with daemon.client() as grpc_client:
        made = grpc_client.containers.Create(
            c.CreateContainerRequest(name="sidegrpc", cmd=["sleep", "60"], labels={"by": "grpc"})
        )
        seen = sdk.containers.get("sidegrpc")
        assert (seen.id, seen.status, seen.labels) == (made.id, "created", {"by": "grpc"})
        seen.start()
        state = grpc_client.containers.Inspect(c.InspectContainerRequest(container=made.id))
        assert state.state.status == "running"
        seen.remove(force=True)
        listed = grpc_client.containers.List(c.ListContainersRequest(all=True))
        assert made.id not in [x.id for x in listed.containers]

        box = sdk.containers.create("alpine", ["sleep", "60"], name="sidedocker")
        grpc_client.containers.Start(c.StartContainerRequest(container="sidedocker"))
        box.reload()
        assert box.status == "running"
        grpc_client.containers.Rename(
            c.RenameContainerRequest(container=box.id, new_name="sidedocker2")
        )
        assert sdk.containers.get(box.id).name == "sidedocker2"
        grpc_client.containers.Remove(c.RemoveContainerRequest(container=box.id, force=True))
        with pytest.raises(NotFound):
            box.reload()


def test_events_and_followed_logs_through_the_sdk(sdk: docker_sdk.DockerClient) -> None:
    began = time.time() - 1
    box = sdk.containers.run(
        "alpine", ["sh", "-c", "echo one; echo two >&2; exit 2"], name="sdkstream", detach=True
    )
    assert box.wait()["StatusCode"] == 2
    followed = b"".join(box.logs(stream=True, follow=True, stdout=True, stderr=True))
    assert followed == b"one\ntwo\n"
    assert box.logs(stderr=False) == b"one\n"
    seen = sdk.events(
        since=began, until=time.time() + 0.5, decode=True, filters={"container": "sdkstream"}
    )
    actions = [(e["Type"], e["Action"], e["Actor"]["Attributes"]["name"]) for e in seen]
    assert actions == [
        ("container", "create", "sdkstream"),
        ("container", "start", "sdkstream"),
        ("container", "die", "sdkstream"),
    ]
    box.remove()
