"""docker create, run, start, rm and rename as moby answers them: the real docker CLI
and raw Engine API requests on a real daemon (moby's integration tests' cases)."""

from __future__ import annotations

import re

from api_daemon import Daemon
from docker_side import DockerCli, http

_TRUE = {"Image": "alpine", "Cmd": ["true"]}
_JSON = {"Content-Type": "application/json"}


def test_an_empty_entrypoint_runs_the_command_alone(docker: DockerCli) -> None:
    """docker's `--entrypoint ""` sends [""], which moby resets: the command runs."""
    done = docker.run("run", "--rm", "--entrypoint", "", "alpine", "echo", "hi")
    assert (done.returncode, done.stdout, done.stderr) == (0, "hi\n", "")
    cid = docker.ok("create", "--entrypoint", "", "alpine", "echo", "x").strip()
    assert docker.ok("inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", cid) == (
        'null ["echo","x"]\n'
    )
    nothing = docker.run("run", "--rm", "--entrypoint", "", "alpine")
    assert nothing.returncode == 125
    assert "Error response from daemon: No command specified" in nothing.stderr
    docker.ok("rm", cid)


def test_many_unnamed_containers_all_get_a_name(daemon: Daemon, docker: DockerCli) -> None:
    """More containers without a name than there are adjective_scientist pairs to try at
    random: past a few taken ones, a random short ID is the name (moby's fallback)."""
    with http(daemon) as h:
        ids = []
        for _ in range(150):
            made = h.post("/v1.51/containers/create", json=_TRUE)
            assert made.status_code == 201, made.text
            ids.append(made.json()["Id"])
    names = docker.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert len(set(names)) == len(names) >= 150
    assert all(re.fullmatch(r"[a-z]+_[a-z]+|[0-9a-f]{12}", n) for n in names), names
    assert docker.ok("rm", *ids).split() == ids


def test_create_bodies_as_mobys_router_reads_them(daemon: Daemon, docker: DockerCli) -> None:
    with http(daemon) as h:
        for body, status, message in (
            (b"", 400, "invalid JSON: got EOF while reading request body"),
            (b"{}", 400, "config cannot be empty in order to create a container"),
            (b'{"HostConfig": {}}', 400, "config cannot be empty in order to create a container"),
            (b'{"Image": "alpine", "Entrypoint": [""]}', 400, "No command specified"),
            (
                b'{"Image": "alpine", "Cmd": ["true"], "HostConfig": {"RestartPolicy":'
                b' {"Name": "on-failure:3"}}}',
                400,
                "invalid restart policy: unknown policy 'on-failure:3'; use one of 'no', "
                "'always', 'on-failure', or 'unless-stopped'",
            ),
        ):
            answer = h.post("/v1.51/containers/create", content=body, headers=_JSON)
            assert (answer.status_code, answer.json()) == (status, {"message": message}), body
        # Go's decoder matches a key whatever its case.
        made = h.post(
            "/v1.51/containers/create?name=dcase",
            content=b'{"image": "alpine:3", "cmd": ["sh", "-c", "exit 3"], "LABELS": {"k": "v"}}',
            headers=_JSON,
        )
        assert made.status_code == 201, made.text
    shown = docker.ok("inspect", "-f", "{{.Config.Image}} {{.Config.Labels.k}}", "dcase")
    assert shown == "alpine:3 v\n"
    assert docker.run("start", "-a", "dcase").returncode == 3
    docker.ok("rm", "dcase")


def test_an_old_api_version_drops_auto_remove(daemon: Daemon, docker: DockerCli) -> None:
    """Before API 1.25 the client removed the container itself: moby ignores AutoRemove."""
    body = {**_TRUE, "HostConfig": {"AutoRemove": True}}
    with http(daemon) as h:
        old = h.post("/v1.24/containers/create?name=dold", json=body)
        new = h.post("/v1.25/containers/create?name=dnew", json=body)
    assert (old.status_code, new.status_code) == (201, 201)
    shown = docker.ok("inspect", "-f", "{{.Name}} {{.HostConfig.AutoRemove}}", "dold", "dnew")
    assert shown == "/dold false\n/dnew true\n"
    docker.ok("rm", "dold", "dnew")


def test_bad_names_are_refused_with_mobys_message(daemon: Daemon, docker: DockerCli) -> None:
    only = "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    for name in ("a/b", "..", "a", "-ab", "é1", "a\nb", "ab\n", "a\x01b"):
        made = docker.run("create", "--name", name, "alpine", "true")
        assert (made.returncode, made.stdout) == (1, ""), name
        refusal = f"Invalid container name ({name}), {only}"
        assert made.stderr == f"Error response from daemon: {refusal}\n", name
    with http(daemon) as h:
        made = h.post("/v1.51/containers/create", params={"name": "a\x00b"}, json=_TRUE)
        assert (made.status_code, made.json()) == (
            400,
            {"message": f"Invalid container name (a\x00b), {only}"},
        )
    docker.ok("create", "--name", "dren", "alpine", "true")
    docker.ok("create", "--name", "dtaken", "alpine", "true")
    taken = docker.ok("inspect", "-f", "{{.Id}}", "dtaken").strip()
    failed = "Error: failed to rename container named dren\n"
    for new, refusal in (
        ("dren", "Renaming a container with the same name as its current name"),
        ("/dren", "Renaming a container with the same name as its current name"),
        ("a\tb", f"Error when allocating new name: Invalid container name (/a\tb), {only}"),
        ("x/y", f"Error when allocating new name: Invalid container name (/x/y), {only}"),
        (
            "dtaken",
            'Error when allocating new name: Conflict. The container name "/dtaken" is already '
            f'in use by container "{taken}". You have to remove (or rename) that container to '
            "be able to reuse that name.",
        ),
    ):
        done = docker.run("rename", "dren", new)
        assert (done.returncode, done.stdout) == (1, ""), new
        assert done.stderr == f"Error response from daemon: {refusal}\n{failed}", new
    with http(daemon) as h:
        empty = h.post("/v1.51/containers/dren/rename?name=")
        assert (empty.status_code, empty.json()) == (
            400,
            {"message": "Neither old nor new names may be empty"},
        )
        # A name given twice is the first, as Go's Form.Get reads it.
        twice = h.post("/v1.51/containers/dren/rename?name=dtaken&name=dfree")
        assert twice.status_code == 409, twice.text
        made = h.post("/v1.51/containers/create?name=dfirst&name=dsecond", json=_TRUE)
        assert made.status_code == 201, made.text
    assert docker.ok("rm", "dfirst") == "dfirst\n"
    assert docker.ok("rename", "dren", "/dren2") == ""
    assert docker.ok("rm", "dren2", "dtaken").split() == ["dren2", "dtaken"]


def test_run_exit_codes_as_docker_gives_them(docker: DockerCli) -> None:
    """docker's 125 (daemon refused), 126 (not executable), 127 (not found), else the
    command's own."""
    for args, code, says in (
        (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
        (["/tmp"], 126, 'exec: "/tmp": is a directory'),
        (["/nonexistent"], 127, 'exec: "/nonexistent": stat /nonexistent: no such file'),
        (["nonexistent"], 127, 'exec: "nonexistent": executable file not found in $PATH'),
    ):
        done = docker.run("run", "--rm", "alpine", *args)
        assert done.returncode == code, args
        assert f"docker: Error response from daemon: {says}" in done.stderr, args
    for code in (0, 1, 2, 42, 255):
        done = docker.run("run", "--rm", "alpine", "sh", "-c", f"exit {code}")
        assert done.returncode == code
    assert docker.run("run", "--rm", "alpine", "sh", "-c", "kill -9 $$").returncode == 137
    # A detached one that cannot run stays created, with the code and error recorded.
    failed = docker.run("run", "-d", "--name", "dnorun", "alpine", "nonexistent")
    assert failed.returncode == 127
    shown = docker.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "dnorun")
    assert shown == "created 127\n"
    docker.ok("rm", "dnorun")


def test_start_and_rm_of_several(docker: DockerCli) -> None:
    docker.ok("create", "--name", "ds1", "alpine", "sleep", "60")
    docker.ok("create", "--name", "ds2", "alpine", "sh", "-c", "echo two; exit 5")
    started = docker.run("start", "ds1", "dsnosuch", "ds2")
    assert (started.returncode, started.stdout) == (1, "ds1\nds2\n")
    assert started.stderr == (
        "Error response from daemon: No such container: dsnosuch\n"
        "Error: failed to start containers: dsnosuch\n"
    )
    # Its first run over before it is started again (else the attached start below could
    # see that run's exit and leave a second run going, which rm would then refuse).
    assert docker.ok("wait", "ds2") == "5\n"
    # moby's listing quotes an argument that holds a space.
    listed = ("ps", "-a", "--no-trunc", "--filter", "name=^ds2$", "--format", "{{.Command}}")
    command = docker.ok(*listed)
    assert command == "\"sh -c 'echo two; exit 5'\"\n"
    attached = docker.run("start", "-a", "ds2")
    assert (attached.returncode, attached.stdout) == (5, "two\n")
    removed = docker.run("rm", "ds1", "ds2", "dsnosuch")
    assert (removed.returncode, removed.stdout) == (1, "ds2\n")
    assert removed.stderr == (
        'Error response from daemon: cannot remove container "ds1": container is running: '
        "stop the container before removing or force remove\n"
        "Error response from daemon: No such container: dsnosuch\n"
    )
    forced = docker.run("rm", "-f", "ds1", "dsnosuch")
    assert (forced.returncode, forced.stdout) == (0, "ds1\n")
    assert docker.ok("container", "ls", "-a", "--filter", "name=^ds", "-q") == ""
