"""What chartd has none of (a container filesystem, volumes, networks), through docker's CLI.

Each command a docker user types gets the answer of a daemon that has none
of them: an empty listing, moby's not-found message for a name, a prune
that removes nothing, or a refusal that says why, never "page not found".
"""

from __future__ import annotations

import json
from pathlib import Path

from api_daemon import Daemon
from docker_side import DockerCli, http


def test_docker_diff_export_and_cp_say_why_they_cannot(docker: DockerCli, tmp_path: Path) -> None:
    docker.ok("run", "-d", "--name", "fsless", "alpine", "sleep", "60")
    why = "chartd containers have no filesystem of their own: they run in the host's, so there "
    for args, what in [
        (("diff", "fsless"), "diff"),
        (("export", "-o", str(tmp_path / "fs.tar"), "fsless"), "export"),
        (("cp", "fsless:/etc/hostname", "-"), "copy from or to"),
        (("cp", "/etc/hostname", "fsless:/tmp/hostname"), "copy from or to"),
    ]:
        out = docker.run(*args)
        assert (out.returncode, out.stdout) == (1, ""), (args, out)
        assert out.stderr == (
            f"Error response from daemon: {why}is no container filesystem to {what}\n"
        ), args
    # An unknown container is docker's own 404 first.
    for args in (("diff", "fsnosuch"), ("export", "fsnosuch"), ("cp", "fsnosuch:/x", "-")):
        out = docker.run(*args)
        assert out.returncode == 1
        assert out.stderr == "Error response from daemon: No such container: fsnosuch\n", args
    docker.ok("rm", "-f", "fsless")


def test_docker_volume_commands_meet_no_volumes(docker: DockerCli) -> None:
    assert docker.ok("volume", "ls", "-q") == ""
    assert docker.ok("volume", "ls").split() == ["DRIVER", "VOLUME", "NAME"]
    for verb in ("inspect", "rm"):
        out = docker.run("volume", verb, "novol")
        assert out.returncode == 1
        assert "Error response from daemon: get novol: no such volume\n" in out.stderr, verb
    made = docker.run("volume", "create", "novol")
    assert made.returncode == 1
    assert made.stderr == (
        "Error response from daemon: chartd makes no volumes: "
        "a container runs in the host's filesystem\n"
    )
    assert docker.ok("volume", "prune", "-f") == "Total reclaimed space: 0B\n"


def test_docker_network_commands_meet_no_networks(docker: DockerCli) -> None:
    assert docker.ok("network", "ls", "-q") == ""
    for args in (("inspect", "nonet"), ("rm", "nonet")):
        out = docker.run("network", *args)
        assert out.returncode == 1
        assert "Error response from daemon: network nonet not found\n" in out.stderr, args
    docker.ok("create", "--name", "netless", "alpine", "true")
    connect = docker.run("network", "connect", "nonet", "netless")
    assert connect.returncode == 1
    assert connect.stderr == "Error response from daemon: network nonet not found\n"
    made = docker.run("network", "create", "nonet")
    assert made.returncode == 1
    assert made.stderr == (
        "Error response from daemon: chartd makes no networks: "
        "a container runs in the host's network namespace\n"
    )
    assert docker.run("network", "prune", "-f").returncode == 0
    docker.ok("rm", "netless")


def test_docker_system_df_counts_the_containers_and_their_images(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "dfrun", "busybox:1.36", "sleep", "60")
    docker.ok("create", "--name", "dfmade", "busybox:1.36", "true")
    rows = {
        row["Type"]: row
        for row in map(
            json.loads, docker.ok("system", "df", "--format", "{{json .}}").split("\n")[:-1]
        )
    }
    assert set(rows) == {"Images", "Containers", "Local Volumes", "Build Cache"}
    listed = docker.ok("ps", "-aq").split()
    assert rows["Containers"]["TotalCount"] == str(len(listed))
    running = docker.ok("ps", "-q").split()
    assert rows["Containers"]["Active"] == str(len(running))
    assert rows["Images"]["TotalCount"] == str(len(docker.ok("images", "-q").split()))
    assert rows["Local Volumes"]["TotalCount"] == "0"
    assert all(row["Size"] == "0B" for row in rows.values())
    verbose = docker.ok("system", "df", "-v")
    assert "busybox      1.36" in verbose
    assert "dfrun" in verbose and "dfmade" in verbose
    docker.ok("rm", "-f", "dfrun", "dfmade")


def test_docker_system_prune_removes_stopped_containers_and_nothing_else(
    docker: DockerCli, daemon: Daemon
) -> None:
    kept = docker.ok("run", "-d", "--name", "spkeep", "alpine", "sleep", "60").strip()
    gone = docker.ok("create", "--name", "spgone", "alpine", "true").strip()
    out = docker.ok("system", "prune", "-a", "-f", "--volumes")
    assert gone in out.split()
    assert out.endswith("Total reclaimed space: 0B\n")
    left = docker.ok("ps", "-aq", "--no-trunc").split()
    assert kept in left and gone not in left
    with http(daemon) as h:
        assert h.post("/images/prune").json() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
        assert h.post("/build/prune").json() == {"CachesDeleted": None, "SpaceReclaimed": 0}
        assert h.post("/networks/prune").json() == {"NetworksDeleted": None}
        assert h.get("/volumes").json() == {"Volumes": [], "Warnings": None}
    docker.ok("rm", "-f", "spkeep")


def test_docker_image_history_is_one_empty_layer_and_save_is_refused(
    docker: DockerCli, tmp_path: Path
) -> None:
    lines = docker.ok("history", "alpine").splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert len(lines) == 2
    image_id = docker.ok("image", "inspect", "-f", "{{.Id}}", "alpine").strip()
    assert docker.ok("history", "-q", "--no-trunc", "alpine") == image_id + "\n"
    assert docker.ok("history", "--format", "{{.Size}}", "docker.io/library/alpine") == "0B\n"
    bad = docker.run("history", "Not:A:Reference")
    assert (bad.returncode, bad.stderr) == (
        1,
        "Error response from daemon: invalid reference format\n",
    )
    saved = docker.run("save", "-o", str(tmp_path / "alpine.tar"), "alpine")
    assert saved.returncode == 1
    assert "chartd has no registry and no images" in saved.stderr


def test_docker_plugin_commands_meet_no_plugins(docker: DockerCli) -> None:
    assert docker.ok("plugin", "ls", "-q") == ""
    for verb in ("inspect", "rm", "enable", "disable"):
        out = docker.run("plugin", verb, "noplug")
        assert out.returncode == 1
        assert 'Error response from daemon: plugin "noplug" not found\n' in out.stderr, verb
    installed = docker.run("plugin", "install", "--grant-all-permissions", "noplug")
    assert (installed.returncode, installed.stderr) == (
        1,
        "Error response from daemon: chartd runs no plugins\n",
    )


def test_docker_swarm_commands_answer_as_a_node_in_no_swarm(docker: DockerCli) -> None:
    manager = (
        'Error response from daemon: This node is not a swarm manager. Use "docker swarm init" '
        'or "docker swarm join" to connect this node to swarm and try again.\n'
    )
    for args in (
        ("service", "ls"),
        ("node", "ls"),
        ("secret", "ls"),
        ("config", "ls"),
        ("service", "create", "alpine", "true"),
        ("swarm", "join-token", "worker"),
    ):
        out = docker.run(*args)
        assert (out.returncode, out.stderr) == (1, manager), args
    left = docker.run("swarm", "leave")
    assert left.stderr == "Error response from daemon: This node is not part of a swarm\n"
    for args in (("swarm", "init"), ("swarm", "join", "127.0.0.1:2377", "--token", "x")):
        out = docker.run(*args)
        assert out.returncode == 1
        assert out.stderr == (
            "Error response from daemon: chartd is a single node and runs no swarm: "
            "it cannot make or join one\n"
        ), args
    assert docker.ok("info", "--format", "{{.Swarm.LocalNodeState}}") == "inactive\n"
