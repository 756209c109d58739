"""The operating verbs (kill, exec, logs, stop, restart) on hostile input, as moby answers.

Each case was answered otherwise before: a kill's number the platform has
no signal for said ``invalid signal``; ``+10`` was refused; an exec without
a command in an unknown container was 404 where moby's router says first
that there is no command; a string ``Cmd`` was run, a lower-case ``cmd``
ignored; a log's ``since`` was refused before the container was looked up,
in words of chartd's; a stop's ``t`` past 32 bits was refused, and a bad one
in words of chartd's where moby's are Go's ``strconv``.
"""

from __future__ import annotations

from api_daemon import Daemon
from docker_side import DockerCli, http


def test_docker_kill_reads_the_signal_as_moby(docker: DockerCli) -> None:
    script = 'trap "exit 7" USR1; while :; do sleep 0.1; done'
    docker.ok("run", "-d", "--name", "ckill", "alpine", "sh", "-c", script)
    for number in ("32", "33", "65", "999", "-5"):
        refused = docker.run("kill", "-s", number, "ckill")
        assert (refused.returncode, refused.stdout) == (1, ""), number
        assert refused.stderr == (
            "Error response from daemon: cannot kill container: ckill: "
            f"the linux daemon does not support signal {int(number)}\n"
        )
    for name in ("0", "SIGFOO"):
        refused = docker.run("kill", "-s", name, "ckill")
        assert refused.stderr == (
            f"Error response from daemon: cannot kill container: ckill: invalid signal: {name}\n"
        )
    # moby reads a number as Go's Atoi does: a sign is allowed.
    assert docker.ok("kill", "-s", "+10", "ckill") == "ckill\n"
    assert docker.ok("wait", "ckill") == "7\n"
    docker.ok("rm", "ckill")


def test_exec_bodies_are_read_as_gos_decoder_reads_them(daemon: Daemon, docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "cexec", "alpine", "sleep", "60")
    with http(daemon) as h:
        # moby's router finds no command before it looks for the container
        nothing = h.post("/containers/cnosuch/exec", json={"Cmd": []})
        assert (nothing.status_code, nothing.json()) == (
            400,
            {"message": "No exec command specified"},
        )
        for body, wrong in (
            ({"Cmd": "echo hi"}, "string into Go struct field ExecOptions.Cmd of type []string"),
            ({"Cmd": ["true"], "Env": "A=1"}, "string into Go struct field ExecOptions.Env"),
            ({"Cmd": ["true"], "ConsoleSize": [-1, 2]}, "number -1 into Go struct field"),
        ):
            answer = h.post("/containers/cexec/exec", json=body)
            assert answer.status_code == 400
            assert answer.json()["message"].startswith(
                f"invalid JSON: json: cannot unmarshal {wrong}"
            )
        # Field names in any case, as Go's decoder matches them.
        body = {"cmd": ["sh", "-c", "echo $X; exit 3"], "env": ["X=low"], "attachstdout": True}
        made = h.post("/containers/cexec/exec", json=body)
        assert made.status_code == 201, made.text
        exec_id = made.json()["Id"]
        started = h.post(f"/exec/{exec_id}/start", json={"detach": False})
        assert started.content == b"\x01\x00\x00\x00\x00\x00\x00\x04low\n"
        assert h.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 3
        bad_start = h.post("/containers/cexec/exec", json={"Cmd": ["true"]}).json()["Id"]
        refused = h.post(f"/exec/{bad_start}/start", json={"Tty": "no"})
        assert (refused.status_code, refused.json()["message"]) == (
            400,
            "invalid JSON: json: cannot unmarshal string into Go struct field "
            "ExecStartOptions.Tty of type bool",
        )
    docker.ok("rm", "-f", "cexec")


def test_a_logs_window_is_read_as_moby_reads_it(daemon: Daemon, docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "clogs", "alpine", "sh", "-c", "echo one; exec sleep 60")
    with http(daemon) as h:
        unknown = h.get("/containers/cnosuch/logs?stdout=1&since=garbage")
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"message": "No such container: cnosuch"},
        )
        for query, quoted in (("since=garbage", "garbage"), ("since=1.x", "x"), ("until=1.", "")):
            bad = h.get(f"/containers/clogs/logs?stdout=1&{query}")
            assert bad.status_code == 400, query
            assert bad.json() == {
                "message": f'strconv.ParseInt: parsing "{quoted}": invalid syntax'
            }, query
        # A tail that is no number is the whole log, however long.
        whole = h.get("/containers/clogs/logs?stdout=1&tail=" + "x" * 100)
        assert whole.content == b"\x01\x00\x00\x00\x00\x00\x00\x04one\n"
        assert h.get("/containers/clogs/logs?stdout=1&tail=%2B1").content == whole.content
    docker.ok("rm", "-f", "clogs")


def test_a_stops_timeout_is_read_as_moby_reads_it(daemon: Daemon, docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "cstop", "alpine", "sleep", "60")
    with http(daemon) as h:
        for verb in ("stop", "restart"):
            bad = h.post(f"/containers/cstop/{verb}?t=1.5")
            assert (bad.status_code, bad.json()) == (
                400,
                {"message": 'strconv.Atoi: parsing "1.5": invalid syntax'},
            )
        # Past 32 bits it is Go's int still: a wait without end, as a negative one.
        assert h.post("/containers/cstop/restart?t=-5").status_code == 204
        assert h.post("/containers/cstop/stop?t=3000000000").status_code == 204
    assert docker.ok("inspect", "-f", "{{.State.Status}}", "cstop") == "exited\n"
    docker.ok("rm", "cstop")
