"""The ``chartd`` CLI against a real daemon: a real process's whole lifecycle, docker-shaped."""

from __future__ import annotations

import json
import re
from typing import Any

from api_daemon import Daemon

from engine.api.chartd.v1 import engine_pb2

START_SAGA = [
    "mount_rootfs",
    "network_sandbox",
    "container_dirs",
    "mounts",
    "spec",
    "reset_restart_manager",
    "runtime_container",
    "task_create",
    "task_start",
]


def ok(daemon: Daemon, *args: str) -> str:
    done = daemon.cli(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def inspect(daemon: Daemon, name: str) -> dict[str, Any]:
    found = json.loads(ok(daemon, "inspect", name))
    assert len(found) == 1
    result: dict[str, Any] = found[0]
    return result


def test_the_lifecycle_of_a_real_process(daemon: Daemon) -> None:
    with daemon.client() as c:
        since = c.engine.GetSequence(engine_pb2.GetSequenceRequest()).sequence
    cid = ok(
        daemon,
        "run", "-d", "--name", "web", "--label", "app=web", "-e", "GREETING=hello",
        "sh", "-c", 'echo "$GREETING from $0"; exec sleep 60',
    ).strip()  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", cid)

    # docker's `ps --format json`: a JSON object per line, IDs shortened
    listed = [json.loads(line) for line in ok(daemon, "ps", "--format", "json").splitlines()]
    web = next(c for c in listed if c["Names"] == "web")
    assert (web["ID"], web["State"], web["Labels"]) == (cid[:12], "running", "app=web")
    assert web["Status"].startswith("Up ")
    assert cid[:12] in ok(daemon, "ps", "-q").split()
    table = ok(daemon, "ps")
    assert "CONTAINER ID" in table and "web" in table

    state = inspect(daemon, "web")
    assert state["Id"] == cid and state["Name"] == "/web"
    assert state["State"]["Running"] and state["State"]["Pid"] > 0
    assert state["Config"]["Env"] == ["GREETING=hello"]

    assert ok(daemon, "pause", "web") == "web\n"
    assert inspect(daemon, cid[:10])["State"]["Status"] == "paused"
    refused = daemon.cli("start", "web")
    assert refused.returncode == 1
    assert refused.stderr == (  # then docker's CLI names what it could not start
        "Error response from daemon: cannot start a paused container, try unpause instead\n"
        "Error: failed to start containers: web\n"
    )
    assert ok(daemon, "unpause", "web") == "web\n"
    # NotModified is success for the CLI, as for docker.
    assert ok(daemon, "start", "web") == "web\n"

    assert ok(daemon, "logs", "web") == "hello from sh\n"
    assert ok(daemon, "stop", "-t", "5", "web") == "web\n"
    stopped = inspect(daemon, "web")["State"]
    assert (stopped["Status"], stopped["Running"], stopped["Pid"]) == ("exited", False, 0)
    assert ok(daemon, "wait", "web") == f"{stopped['ExitCode']}\n"
    assert ok(daemon, "stop", "web") == "web\n"  # stopped already: NotModified, success

    assert ok(daemon, "rename", "web", "web2") == ""
    assert inspect(daemon, "web2")["Name"] == "/web2"

    journal = json.loads(ok(daemon, "history", "web2", "--format", "json"))
    assert [t["event"] for t in journal] == ["start", "pause", "unpause", "stop", "exit", "rename"]
    assert all(t["status"] == "committed" for t in journal)
    assert [s["name"] for s in journal[0]["steps"]] == START_SAGA
    assert "mount_rootfs" in ok(daemon, "history", "web2")

    with daemon.client() as c:
        until = c.engine.GetSequence(engine_pb2.GetSequenceRequest()).sequence
    lines = ok(
        daemon, "events", "--after", str(since), "--until", "0s", "--format", "json",
        "--filter", f"container={cid}",
    ).splitlines()  # fmt: skip
    events = [json.loads(line) for line in lines]
    assert [e["Action"] for e in events] == [
        "create", "start", "pause", "unpause", "kill", "die", "stop", "rename",
    ]  # fmt: skip
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and all(since < s <= until for s in seqs)
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == str(stopped["ExitCode"])
    human = ok(daemon, "events", "--after", str(since), "--until", "0s")
    assert f"container create {cid} (name=web" in human

    assert ok(daemon, "rm", "web2") == "web2\n"
    assert cid[:12] not in ok(daemon, "ps", "-a", "-q").split()


def test_run_waits_and_exits_with_the_code_of_the_container(daemon: Daemon) -> None:
    done = daemon.cli("run", "--rm", "--name", "once", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert (done.stdout, done.stderr) == ("out\n", "err\n")
    assert "once" not in ok(daemon, "ps", "-a")  # --rm removed it
    missing = daemon.cli("run", "--name", "nocmd", "no-such-command-here")
    assert missing.returncode == 127
    assert missing.stderr == (  # docker run's own framing of the daemon's error
        "chartd: Error response from daemon: "
        'exec: "no-such-command-here": executable file not found in $PATH\n'
        "\nRun 'chartd run --help' for more information\n"
    )


def test_create_records_every_setting(daemon: Daemon) -> None:
    cid = ok(
        daemon,
        "create", "--name", "settings", "--restart", "on-failure:2", "--stop-signal", "SIGINT",
        "--stop-timeout", "3", "-w", "/tmp", "-l", "tier=db", "-e", "A=1", "--", "sleep", "5",
    ).strip()  # fmt: skip
    found = inspect(daemon, cid)
    assert found["State"]["Status"] == "created"
    assert found["Config"] == {
        "Cmd": ["sleep", "5"],
        "Env": ["A=1"],
        "WorkingDir": "/tmp",
        "Labels": {"tier": "db"},
        "StopSignal": "SIGINT",
        "StopTimeout": 3,
    }
    assert found["HostConfig"] == {
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
        "AutoRemove": False,
    }
    assert found["LogPath"].endswith(f"{cid}-json.log")
    assert ok(daemon, "ps", "--filter", "status=created", "--format", "json").strip()
    assert ok(daemon, "rm", "-f", "settings") == "settings\n"


def test_daemon_errors_print_like_docker(daemon: Daemon) -> None:
    missing = daemon.cli("stop", "nosuch", "other")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "Error response from daemon: No such container: nosuch",
        "Error response from daemon: No such container: other",
    ]
    bad = daemon.cli("create", "--restart", "sometimes", "true")
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error response from daemon: invalid restart policy")
    assert json.loads(daemon.cli("inspect", "nosuch").stdout) == []


def test_restart_with_a_signal_and_bad_signals(daemon: Daemon) -> None:
    # The shell ignores SIGTERM (its stop signal): only the SIGKILL asked for ends it.
    script = 'trap "" TERM; while :; do sleep 1; done'
    ok(daemon, "run", "-d", "--name", "sig", "sh", "-c", script)
    before = inspect(daemon, "sig")["State"]
    assert ok(daemon, "restart", "-s", "KILL", "sig") == "sig\n"
    after = inspect(daemon, "sig")["State"]
    assert after["Running"] and after["Pid"] != before["Pid"]
    assert after["StartedAt"] != before["StartedAt"]
    refused = daemon.cli("restart", "-s", "NOPE", "sig")
    refusal = "Error response from daemon: Cannot restart container sig: invalid signal: NOPE\n"
    assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", refusal)
    assert inspect(daemon, "sig")["State"] == after  # nothing was sent
    assert ok(daemon, "rm", "-f", "sig") == "sig\n"


def test_the_cli_cannot_connect_to_a_missing_daemon(daemon: Daemon) -> None:
    done = daemon.cli("-H", f"unix://{daemon.state_dir}/none.sock", "ps")
    assert done.returncode == 1
    assert done.stderr.startswith("Cannot connect to the chartd daemon at unix://")


def test_chart_export_formats(daemon: Daemon) -> None:
    assert ok(daemon, "chart", "export", "container", "--format", "mermaid").startswith(
        "stateDiagram-v2\n"
    )
    assert ok(daemon, "chart", "export", "--format", "dot").startswith('digraph "container"')
    document = json.loads(ok(daemon, "chart", "export", "container"))
    assert document["chart"] == "container"


def test_rm_force_of_a_missing_container_prints_the_error_and_succeeds(daemon: Daemon) -> None:
    done = daemon.cli("rm", "-f", "nosuch")
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "Error response from daemon: No such container: nosuch\n"
    assert daemon.cli("rm", "nosuch").returncode == 1


def test_ps_prints_dockers_table_without_padding(daemon: Daemon) -> None:
    ok(daemon, "create", "--name", "table", "--", "sleep", "5")
    lines = ok(daemon, "ps", "-a").splitlines()
    assert lines[0].startswith("CONTAINER ID   COMMAND ")
    assert all(line == line.strip() for line in lines)
    assert ok(daemon, "rm", "table") == "table\n"


def test_events_take_dockers_times_and_never_share_a_time(daemon: Daemon) -> None:
    cid = ok(daemon, "run", "-d", "--name", "times", "sleep", "30").strip()
    ok(daemon, "stop", "-t", "5", "times")
    lines = ok(
        daemon, "events", "--since", "10m", "--until", "0s", "--format", "json",
        "--filter", f"container={cid}",
    ).splitlines()  # fmt: skip
    events = [json.loads(line) for line in lines]
    assert [e["Action"] for e in events] == ["create", "start", "kill", "die", "stop"]
    nanos = [e["timeNano"] for e in events]
    assert nanos == sorted(nanos) and len(set(nanos)) == len(nanos)
    earlier = ok(daemon, "events", "--since=2h", "--until=1h")
    assert earlier == ""
    assert ok(daemon, "rm", "times") == "times\n"


def test_stop_of_several_containers_runs_them_in_parallel(daemon: Daemon, tmp_path: Any) -> None:
    # Each container exits on SIGTERM only once all three have had theirs: stopped one after
    # the other, the first would wait for the others and be killed after 120 s (and the CLI
    # call would time out first); stopped in parallel, all three exit 0 at once.
    names = ["par-a", "par-b", "par-c"]
    for name in names:
        script = (
            f"trap 'touch {tmp_path}/{name}; "
            f"while [ $(ls {tmp_path} | wc -l) -lt 3 ]; do sleep 0.05; done; exit 0' TERM; "
            "while true; do sleep 0.05; done"
        )
        ok(daemon, "run", "-d", "--name", name, "--", "sh", "-c", script)
    stopped = daemon.cli("stop", "-t", "120", *names, timeout=60)
    assert (stopped.returncode, stopped.stdout) == (0, "par-a\npar-b\npar-c\n"), stopped.stderr
    for name in names:
        assert inspect(daemon, name)["State"]["ExitCode"] == 0, name
        ok(daemon, "rm", name)


def test_the_cli_names_what_it_could_not_do_as_dockers_does(daemon: Daemon) -> None:
    ok(daemon, "create", "--name", "named1", "--", "sleep", "30")
    started = daemon.cli("start", "named1", "nosuch1", "nosuch2")
    assert (started.returncode, started.stdout) == (1, "named1\n")
    assert started.stderr == (
        "Error response from daemon: No such container: nosuch1\n"
        "Error response from daemon: No such container: nosuch2\n"
        "Error: failed to start containers: nosuch1, nosuch2\n"
    )
    renamed = daemon.cli("rename", "nosuch1", "named2")
    assert renamed.returncode == 1
    assert renamed.stderr == (
        "Error response from daemon: No such container: nosuch1\n"
        "Error: failed to rename container named nosuch1\n"
    )
    # Detached, the ID is printed before the start, which then fails.
    detached = daemon.cli("run", "-d", "--name", "named3", "no-such-command-here")
    assert detached.returncode == 127
    assert re.fullmatch(r"[0-9a-f]{64}\n", detached.stdout)
    assert inspect(daemon, detached.stdout.strip())["Name"] == "/named3"
    assert detached.stderr.endswith("\nRun 'chartd run --help' for more information\n")
    ok(daemon, "rm", "-f", "named1", "named3")


def test_ps_last_and_latest_port_and_inspect_type_as_dockers(daemon: Daemon) -> None:
    older = ok(daemon, "create", "--name", "lastold", "--", "true").strip()
    newer = ok(daemon, "create", "--name", "lastnew", "--", "true").strip()
    # Created, never started: only -a, -n or -l list them.
    assert newer[:12] not in ok(daemon, "ps", "-q")
    assert ok(daemon, "ps", "-l", "-q", "--no-trunc") == newer + "\n"
    assert ok(daemon, "ps", "-n", "2", "-q", "--no-trunc") == f"{newer}\n{older}\n"
    assert ok(daemon, "port", "lastnew") == ""
    port = daemon.cli("port", "lastnew", "80/tcp")
    assert (port.returncode, port.stderr) == (
        1,
        "Error: No public port '80/tcp' published for lastnew\n",
    )
    # What was found is printed first, then what was not.
    found = daemon.cli("inspect", "-f", "{{.Name}}", "nosuch9", "lastold")
    assert (found.returncode, found.stdout) == (1, "/lastold\n")
    assert found.stderr == "Error response from daemon: No such container: nosuch9\n"
    typed = ok(daemon, "inspect", "--type", "container", "-f", "{{.Id}}", "lastold")
    assert typed == older + "\n"
    other = daemon.cli("inspect", "--type", "image", "lastold")
    assert (other.returncode, other.stdout) == (1, "")
    assert other.stderr == 'unknown type: "image": must be "container"\n'
    ok(daemon, "rm", "lastold", "lastnew")
