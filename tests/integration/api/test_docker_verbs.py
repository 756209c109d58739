"""docker top, update, container prune and logs' windows through the Engine API."""

from __future__ import annotations

import re

import docker as docker_sdk
from api_daemon import Daemon
from docker_side import DockerCli, http
from test_docker_cli import until

# Four lines, a moment apart, so that a time window falls between them.
_SCRIPT = "for n in 1 2 3 4; do echo line$n; echo err$n >&2; sleep 0.3; done; exec sleep 60"


def test_docker_top_lists_the_containers_processes(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "dtop", "alpine", "sh", "-c", "sleep 60 & exec sleep 61")
    lines = docker.ok("top", "dtop").splitlines()
    assert lines[0].split()[:2] == ["UID", "PID"], lines
    commands = [line.split(None, 7)[-1] for line in lines[1:]]
    assert sorted(commands) == ["sleep 60", "sleep 61"], lines
    custom = docker.ok("top", "dtop", "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in custom[1:]) == ["sleep", "sleep"]
    docker.ok("stop", "-t", "0", "dtop")
    stopped = docker.run("top", "dtop")
    assert stopped.returncode == 1
    assert re.fullmatch(
        r"Error response from daemon: container [0-9a-f]{64} is not running\n", stopped.stderr
    )
    docker.ok("rm", "dtop")


def test_docker_update_changes_the_restart_policy(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "dupd", "alpine", "sleep", "60")
    assert docker.ok("update", "--restart", "on-failure:3", "dupd") == "dupd\n"
    policy = docker.ok("inspect", "-f", "{{json .HostConfig.RestartPolicy}}", "dupd")
    assert policy == '{"Name":"on-failure","MaximumRetryCount":3}\n'
    assert docker.ok("update", "--restart", "always", "dupd") == "dupd\n"
    assert docker.ok("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "dupd") == "always\n"
    memory = docker.run("update", "--memory", "64m", "dupd")
    assert (memory.returncode, memory.stdout) == (1, "")
    assert memory.stderr.startswith(
        "Error response from daemon: chartd sets no resource limits: Memory cannot be updated"
    )
    bad = docker.run("update", "--restart", "sometimes", "dupd")
    assert bad.returncode == 1
    assert "invalid restart policy" in bad.stderr
    unknown = docker.run("update", "--restart", "no", "dnosuchupd")
    assert unknown.returncode == 1
    assert "No such container: dnosuchupd" in unknown.stderr
    docker.ok("rm", "-f", "dupd")


def test_docker_container_prune(docker: DockerCli) -> None:
    kept = docker.ok("run", "-d", "--name", "dpkeep", "alpine", "sleep", "60").strip()
    old = docker.ok("create", "--name", "dpold", "--label", "tier=old", "alpine", "true").strip()
    new = docker.ok("create", "--name", "dpnew", "--label", "tier=new", "alpine", "true").strip()
    # A label the old one has not, then a time before the newest: one at a time.
    out = docker.ok("container", "prune", "-f", "--filter", "label!=tier=new")
    assert out == f"Deleted Containers:\n{old}\n\nTotal reclaimed space: 0B\n"
    assert docker.ok("container", "prune", "-f", "--filter", "until=1h") == (
        "Total reclaimed space: 0B\n"
    )
    out = docker.ok("container", "prune", "-f")
    assert out == f"Deleted Containers:\n{new}\n\nTotal reclaimed space: 0B\n"
    assert docker.ok("ps", "-a", "--format", "{{.ID}}").split() == [kept[:12]]
    bad = docker.run("container", "prune", "-f", "--filter", "until=yesterday")
    assert bad.returncode == 1
    assert 'failed to parse value as time or duration: "yesterday"' in bad.stderr
    docker.ok("rm", "-f", "dpkeep")


def test_docker_logs_tail_since_until_and_follow(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "dlogs", "alpine", "sh", "-c", _SCRIPT)
    until(lambda: "line4" in docker.ok("logs", "dlogs"), "the fourth line")
    # The last entries of both streams together, as docker's json-file log keeps them.
    tail = docker.run("logs", "--tail", "2", "dlogs")
    assert (tail.stdout, tail.stderr) == ("line4\n", "err4\n")
    tail = docker.run("logs", "--tail", "4", "dlogs")
    assert (tail.stdout, tail.stderr) == ("line3\nline4\n", "err3\nerr4\n")
    assert docker.run("logs", "--tail", "0", "dlogs").stdout == ""
    assert docker.run("logs", "--tail", "all", "dlogs").stdout.count("line") == 4

    stamped = docker.ok("logs", "-t", "--tail", "8", "dlogs").splitlines()
    times = {line.split()[1]: line.split()[0] for line in stamped}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", times["line2"])
    assert docker.ok("logs", "--since", times["line3"], "dlogs") == "line3\nline4\n"
    assert docker.ok("logs", "--until", times["line2"], "dlogs") == "line1\nline2\n"
    window = ("--since", times["line2"], "--until", times["line3"])
    assert docker.ok("logs", *window, "--tail", "6", "dlogs") == "line2\nline3\n"
    assert docker.ok("logs", "--since", "1h", "--tail", "2", "dlogs") == "line4\n"

    follower = docker.popen("logs", "-f", "--tail", "2", "dlogs")
    # Whether it began before the stop or after, it prints the last line and ends.
    docker.ok("stop", "-t", "1", "dlogs")
    out, err = follower.communicate(timeout=60)
    assert (follower.returncode, out, err) == (0, "line4\n", "err4\n")
    docker.ok("rm", "dlogs")


def test_the_verbs_requests_as_moby_answers_them(daemon: Daemon, docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "hverbs", "alpine", "sleep", "60")
    with http(daemon) as h:
        for method, path, body, status, why in (
            ("POST", "/containers/hverbs/update", b"[]", 400, "invalid JSON"),
            ("POST", "/containers/hverbs/update", b'{"CpuShares": 5}', 400, "CpuShares"),
            ("POST", "/containers/hverbs/update", b'{"RestartPolicy": 1}', 400, "an object"),
            ("POST", '/containers/prune?filters={"name":["x"]}', b"", 400, "invalid filter 'name'"),
            ("POST", '/containers/prune?filters={"until":["1","2"]}', b"", 400, "more than one"),
            ("GET", "/containers/hverbs/logs?stdout=1&since=x", b"", 400, 'parsing "x": invalid'),
            ("GET", "/containers/nosuch/top", b"", 404, "No such container: nosuch"),
            ("GET", "/containers/nosuch/logs?stdout=1&tail=1", b"", 404, "No such container"),
        ):
            json_type = {"Content-Type": "application/json"} if body else {}
            answer = h.request(method, path, content=body, headers=json_type)
            assert answer.status_code == status, (path, answer.text)
            assert why in answer.json()["message"], (path, answer.text)
        top = h.get("/containers/hverbs/top").json()
        assert top["Titles"][:2] == ["UID", "PID"] and len(top["Processes"]) == 1
        updated = h.post("/containers/hverbs/update", json={"RestartPolicy": {"Name": "always"}})
        assert updated.json() == {"Warnings": []}
        pruned = h.post("/containers/prune")
        assert pruned.json() == {"ContainersDeleted": None, "SpaceReclaimed": 0}
        # moby reads a tail that is no number as all of it
        assert h.get("/containers/hverbs/logs?stdout=1&tail=x").status_code == 200
    docker.ok("rm", "-f", "hverbs")


def test_the_verbs_through_the_sdk(sdk: docker_sdk.DockerClient) -> None:
    box = sdk.containers.run("alpine", ["sh", "-c", _SCRIPT], name="sdkverbs", detach=True)
    table = box.top()
    assert table["Titles"][:2] == ["UID", "PID"]
    assert "sh -c " + _SCRIPT in [row[-1] for row in table["Processes"]]
    assert box.update(restart_policy={"Name": "unless-stopped"}) == {"Warnings": []}
    box.reload()
    assert box.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    until(lambda: b"line4" in box.logs(), "the fourth line")
    assert box.logs(stderr=False, tail=4) == b"line3\nline4\n"
    stamped = box.logs(stderr=False, timestamps=True).splitlines()
    assert box.logs(stderr=False, until=1) == b""  # before it began
    assert len(stamped) == 4
    box.remove(force=True)
    done = sdk.containers.create("alpine", ["true"], name="sdkprune", labels={"gone": "yes"})
    assert sdk.containers.prune(filters={"label": "gone=yes"}) == {
        "ContainersDeleted": [done.id],
        "SpaceReclaimed": 0,
    }
