"""update, top, logs' options and --format, through the ``chartd`` CLI on a real daemon."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_daemon import CHARTD, REPO, Daemon, eventually

WAIT = 30.0


def ok(daemon: Daemon, *args: str) -> str:
    done = daemon.cli(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def refused(daemon: Daemon, *args: str, status: int = 1) -> tuple[str, str]:
    done = daemon.cli(*args)
    assert done.returncode == status, (args, done.stdout, done.stderr)
    return done.stdout, done.stderr


def inspect(daemon: Daemon, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(daemon, "inspect", name))[0]
    return found


def sleeper(daemon: Daemon, name: str, *options: str) -> str:
    return ok(daemon, "run", "-d", "--name", name, *options, "sh", "-c", "sleep 600").strip()


def exited(daemon: Daemon, name: str, code: int = 0, *options: str) -> str:
    cid = ok(daemon, "run", "-d", "--name", name, *options, "sh", "-c", f"exit {code}").strip()
    assert ok(daemon, "wait", name) == f"{code}\n"
    return cid


# -- update ---------------------------------------------------------------------------


def test_update_sets_the_policy_of_each_container_and_prints_its_name(daemon: Daemon) -> None:
    sleeper(daemon, "upd-a")
    exited(daemon, "upd-b")
    assert ok(daemon, "update", "--restart", "on-failure:4", "upd-a", "upd-b") == "upd-a\nupd-b\n"
    for name in ("upd-a", "upd-b"):
        assert inspect(daemon, name)["HostConfig"]["RestartPolicy"] == {
            "Name": "on-failure",
            "MaximumRetryCount": 4,
        }
    events = ok(daemon, "events", "--since", "10m", "--until", "0s", "--filter", "event=update")
    assert "container update" in events and "name=upd-a" in events


def test_update_reports_each_failure_at_the_end_and_exits_1(daemon: Daemon) -> None:
    sleeper(daemon, "upd-c")
    out, err = refused(daemon, "update", "--restart", "always", "upd-missing", "upd-c")
    assert out == "upd-c\n"
    assert err == "Error response from daemon: No such container: upd-missing\n"
    assert inspect(daemon, "upd-c")["HostConfig"]["RestartPolicy"]["Name"] == "always"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "you must provide one or more flags when using this command\n"),
        (
            ("--restart", "on-failure:x"),
            "invalid restart policy format: maximum retry count must be an integer\n",
        ),
        (
            ("--restart", ":3"),
            "invalid restart policy format: no policy provided before colon\n",
        ),
        (
            ("--restart", "sometimes"),
            "Error response from daemon: invalid restart policy: unknown policy 'sometimes'; "
            "use one of 'no', 'always', 'on-failure', or 'unless-stopped'\n",
        ),
        (
            ("--restart", "always:3"),
            "Error response from daemon: invalid restart policy: maximum retry count can only "
            "be used with 'on-failure'\n",
        ),
        (
            ("--restart", "on-failure:-1"),
            "Error response from daemon: invalid restart policy: maximum retry count cannot "
            "be negative\n",
        ),
    ],
)
def test_update_refuses_bad_policies_as_docker(
    daemon: Daemon, args: tuple[str, ...], message: str
) -> None:
    sleeper(daemon, f"upd-bad-{abs(hash(args)) % 10**6}")
    out, err = refused(daemon, "update", *args, f"upd-bad-{abs(hash(args)) % 10**6}")
    assert (out, err) == ("", message)


def test_update_refuses_a_policy_for_an_auto_removed_container(daemon: Daemon) -> None:
    cid = sleeper(daemon, "upd-rm", "--rm")
    _, err = refused(daemon, "update", "--restart", "always", "upd-rm")
    assert err == (
        f"Error response from daemon: Cannot update container {cid}: Restart policy cannot be "
        "updated because AutoRemove is enabled for the container\n"
    )
    assert ok(daemon, "update", "--restart", "no", "upd-rm") == "upd-rm\n"


def test_an_updated_policy_restarts_the_running_container_at_its_next_exit(
    daemon: Daemon,
) -> None:
    # SIGTERM is not this container's stop signal: killing with it is an exit the policy sees.
    sleeper(daemon, "upd-live", "--stop-signal", "SIGUSR2")
    ok(daemon, "update", "--restart", "always", "upd-live")
    ok(daemon, "kill", "-s", "SIGTERM", "upd-live")
    eventually(
        lambda: (
            inspect(daemon, "upd-live")["RestartCount"] >= 1
            and inspect(daemon, "upd-live")["State"]["Status"] == "running"
        ),
        "the container restarted by its new policy",
    )


# -- top ------------------------------------------------------------------------------


def test_top_lists_the_processes_of_a_running_container(daemon: Daemon) -> None:
    sleeper(daemon, "top-a")
    pid = inspect(daemon, "top-a")["State"]["Pid"]
    lines = ok(daemon, "top", "top-a").splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    # docker's layout: columns at least 20 wide, 3 apart
    assert lines[0].startswith("UID" + " " * 17 + "PID")
    rows = [line.split(None, 7) for line in lines[1:]]
    assert str(pid) in [r[1] for r in rows]
    assert any(r[7] == "sleep 600" for r in rows)
    custom = ok(daemon, "top", "top-a", "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and f"{pid}" in custom[1]


def test_top_refuses_a_container_that_is_not_running(daemon: Daemon) -> None:
    cid = exited(daemon, "top-b")
    assert refused(daemon, "top", "top-b") == (
        "",
        f"Error response from daemon: container {cid} is not running\n",
    )
    assert refused(daemon, "top", "top-none")[1] == (
        "Error response from daemon: No such container: top-none\n"
    )


def test_top_refuses_a_column_renamed_to_pid_and_reports_ps_errors(daemon: Daemon) -> None:
    sleeper(daemon, "top-c")
    _, err = refused(daemon, "top", "top-c", "-o", "comm=PID")
    assert err == 'Error response from daemon: specifying "comm=PID" is not allowed\n'
    _, err = refused(daemon, "top", "top-c", "-Q")
    assert err.startswith("Error response from daemon: ps: error:")


# -- logs -----------------------------------------------------------------------------


def test_logs_tail_timestamps_and_time_window(daemon: Daemon) -> None:
    ok(daemon, "run", "-d", "--name", "logs-a", "sh", "-c", "printf 'a\\nb\\nc\\n'; sleep 600")
    eventually(lambda: ok(daemon, "logs", "logs-a") == "a\nb\nc\n", "three lines logged")
    assert ok(daemon, "logs", "--tail", "2", "logs-a") == "b\nc\n"
    assert ok(daemon, "logs", "-n", "0", "logs-a") == ""
    assert ok(daemon, "logs", "--tail", "all", "logs-a") == "a\nb\nc\n"
    stamped = ok(daemon, "logs", "-t", "--tail", "1", "logs-a")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z c\n", stamped), stamped
    assert ok(daemon, "logs", "--since", "1h", "logs-a") == "a\nb\nc\n"
    assert ok(daemon, "logs", "--until", "1h", "logs-a") == ""
    assert ok(daemon, "logs", "--since", str(int(time.time()) + 3600), "logs-a") == ""
    # The lines came in one write: they share its time, which is inside the window.
    when = stamped.split()[0]
    assert ok(daemon, "logs", "--since", when, "--until", when, "logs-a") == "a\nb\nc\n"
    seconds = int(datetime.strptime(when[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    after = f"{seconds}.{int(when[20:29]) + 1:09d}"
    assert ok(daemon, "logs", "--since", after, "logs-a") == ""


def test_logs_refuses_a_time_docker_cannot_read(daemon: Daemon) -> None:
    assert refused(daemon, "logs", "--since", "yesterday", "anything") == (
        "",
        'invalid value for "since": failed to parse value as time or duration: "yesterday"\n',
    )
    assert refused(daemon, "logs", "--until", "3d", "anything")[1] == (
        'invalid value for "until": failed to parse value as time or duration: "3d"\n'
    )


def test_logs_follow_ends_when_the_container_stops(daemon: Daemon) -> None:
    ok(daemon, "run", "-d", "--name", "logs-f", "sh", "-c", "echo one; exec sleep 600")
    follower = subprocess.Popen(
        [*CHARTD, "logs", "-f", "logs-f"], cwd=REPO, env=daemon.env, stdout=subprocess.PIPE
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"one\n"
        assert follower.poll() is None  # still following while the container runs
        ok(daemon, "stop", "-t", "0", "logs-f")
        assert follower.wait(WAIT) == 0
        assert follower.stdout.read() == b""
    finally:
        follower.kill()
        follower.wait()
    # The stream of a stopped container ends at once.
    assert ok(daemon, "logs", "-f", "logs-f") == "one\n"


# -- ps --------------------------------------------------------------------------------


def test_ps_formats(daemon: Daemon) -> None:
    cid = sleeper(daemon, "fmt-a", "--label", "tier=web", "-l", "team=ops")
    line = ok(
        daemon, "ps", "--filter", "name=^fmt-a$", "--format", '{{.ID}} {{.Names}} {{.Label "tier"}}'
    )
    assert line == f"{cid[:12]} fmt-a web\n"
    table = ok(daemon, "ps", "--filter", "name=fmt-a", "--format", "table {{.Names}}\\t{{.State}}")
    assert table == "NAMES     STATE\nfmt-a     running\n"
    assert ok(daemon, "ps", "--filter", "name=fmt-a", "--format", "{{.Labels}}") == (
        "team=ops,tier=web\n"
    )
    shown = json.loads(ok(daemon, "ps", "--filter", "name=fmt-a", "--format", "json"))
    assert (shown["ID"], shown["Names"], shown["State"]) == (cid[:12], "fmt-a", "running")
    assert ok(daemon, "ps", "--no-trunc", "--filter", "name=fmt-a", "--format", "{{.ID}}") == (
        f"{cid}\n"
    )
    assert ok(daemon, "ps", "-q", "--filter", "name=fmt-a") == f"{cid[:12]}\n"
    # docker's management command: `container ls` is ps, `container inspect` inspect
    assert ok(daemon, "container", "ls", "-q", "--filter", "name=fmt-a") == f"{cid[:12]}\n"
    assert ok(daemon, "container", "inspect", "-f", "{{.Name}}", "fmt-a") == "/fmt-a\n"
    assert inspect(daemon, "fmt-a")["Config"]["Labels"] == {"tier": "web", "team": "ops"}


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("{{.ID", "failed to parse template: template: :1: unclosed action\n"),
        (
            "{{nosuch .ID}}",
            'failed to parse template: template: :1: function "nosuch" not defined\n',
        ),
        (
            "{{.Foo}}",
            'failed to execute template: template: :1:2: executing "" at <.Foo>: '
            "can't evaluate field Foo in type *formatter.ContainerContext\n",
        ),
        (
            "{{.Label}}",
            'failed to execute template: template: :1:2: executing "" at <.Label>: '
            "wrong number of args for Label: want 1 got 0\n",
        ),
    ],
)
def test_ps_refuses_a_bad_template_as_docker(daemon: Daemon, fmt: str, message: str) -> None:
    assert refused(daemon, "ps", "--format", fmt) == ("", message)


def test_ps_filters_combine_as_docker(daemon: Daemon) -> None:
    a = sleeper(daemon, "flt-a", "-l", "grp=flt", "-l", "role=a")
    b = exited(daemon, "flt-b", 3, "-l", "grp=flt")
    c = exited(daemon, "flt-c", 0, "-l", "grp=flt")

    def names(*filters: str) -> set[str]:
        args = [x for f in filters for x in ("--filter", f)]
        return set(ok(daemon, "ps", "-a", "--format", "{{.Names}}", *args).split())

    assert names("label=grp=flt") == {"flt-a", "flt-b", "flt-c"}
    assert names("label=grp=flt", "label=role") == {"flt-a"}  # labels all match
    assert names("label=grp", "status=exited") == {"flt-b", "flt-c"}
    assert names("label=grp", "status=exited", "status=running") == {"flt-a", "flt-b", "flt-c"}
    assert names("label=grp", "exited=3") == {"flt-b"}
    assert names("label=grp", "exited=3", "exited=0") == {"flt-b", "flt-c"}
    assert names("name=^/?flt-[ab]$") == {"flt-a", "flt-b"}
    assert names(f"id={a[:10]}", f"id={c}") == {"flt-a", "flt-c"}
    assert names("label=grp", "health=none") == {"flt-a", "flt-b", "flt-c"}
    assert names("label=grp", "health=healthy") == set()
    # without -a, a status filter still lists stopped containers; exited= does not
    assert set(ok(daemon, "ps", "--filter", f"id={b}", "--format", "{{.Names}}").split()) == set()
    assert ok(daemon, "ps", "--filter", "status=exited", "--filter", "label=grp", "-q").split() == [
        c[:12],
        b[:12],
    ]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("color=red", "invalid filter 'color'"),
        ("status=sleepy", "invalid filter 'status=sleepy'"),
        ("health=fine", "Unrecognised filter value for health: fine"),
        ("exited=x", "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid syntax"),
    ],
)
def test_ps_refuses_bad_filters(daemon: Daemon, flt: str, message: str) -> None:
    assert refused(daemon, "ps", "--filter", flt) == (
        "",
        f"Error response from daemon: {message}\n",
    )


# -- inspect --format ---------------------------------------------------------------------


def test_inspect_formats(daemon: Daemon) -> None:
    cid = sleeper(daemon, "ins-a", "-l", "k=v", "--restart", "on-failure:2")
    exited(daemon, "ins-b", 5)
    assert ok(daemon, "inspect", "-f", "{{.State.Status}} {{.Name}}", "ins-a", "ins-b") == (
        "running /ins-a\nexited /ins-b\n"
    )
    state = json.loads(ok(daemon, "inspect", "--format", "{{json .State}}", "ins-a"))
    assert state["Status"] == "running" and state["Pid"] > 0
    assert (
        ok(daemon, "inspect", "-f", '{{.Config.Labels.k}}|{{index .Config.Labels "k"}}', "ins-a")
        == "v|v\n"
    )
    assert (
        ok(
            daemon,
            "inspect",
            "-f",
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}",
            "ins-a",
        )
        == "k=v\n"
    )
    assert ok(daemon, "inspect", "-f", '{{join .Config.Cmd " "}}', "ins-a") == "sh -c sleep 600\n"
    # labels are a typed map in docker: a missing one is no error
    missing = '{{.Config.Labels.nope}}|{{index .Config.Labels "nope"}}|'
    assert ok(daemon, "inspect", "-f", missing, "ins-a") == "<no value>||\n"
    assert ok(daemon, "inspect", "-f", "{{upper .State.Status}}", "ins-b") == "EXITED\n"
    assert (
        ok(daemon, "inspect", "-f", "{{if eq .State.ExitCode 5}}five{{else}}other{{end}}", "ins-b")
        == "five\n"
    )
    assert (
        ok(daemon, "inspect", "-f", "{{.HostConfig.RestartPolicy.MaximumRetryCount}}", cid) == "2\n"
    )
    compact = ok(daemon, "inspect", "--format", "json", "ins-a", "ins-b")
    assert "\n" not in compact.rstrip("\n")
    assert [d["Name"] for d in json.loads(compact)] == ["/ins-a", "/ins-b"]


def test_inspect_template_errors_as_docker(daemon: Daemon) -> None:
    sleeper(daemon, "ins-c")
    assert refused(daemon, "inspect", "-f", "{{.Name", "ins-c", status=64) == (
        "",
        "template parsing error: template: :1: unclosed action\n",
    )
    out, err = refused(daemon, "inspect", "-f", "{{.Nope}}", "ins-c")
    assert out == "\n"
    assert err == (
        'template parsing error: template: :1:2: executing "" at <.Nope>: '
        'map has no entry for key "Nope"\n'
    )
    out, err = refused(daemon, "inspect", "-f", "{{.Name}}", "ins-c", "ins-none")
    assert out == "/ins-c\n"
    assert err == "Error response from daemon: No such container: ins-none\n"


def test_labels_from_files_then_from_the_command_line(daemon: Daemon, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# team labels\nteam=ops\n\n   env=prod\nflag\n")
    ok(daemon, "create", "--name", "lbl-a", "--label-file", str(labels), "-l", "team=dev", "true")
    assert inspect(daemon, "lbl-a")["Config"]["Labels"] == {
        "team": "dev",
        "env": "prod",
        "flag": "",
    }
    missing = tmp_path / "none"
    assert refused(daemon, "create", "--label-file", str(missing), "true", status=125) == (
        "",
        f"open {missing}: no such file or directory\n",
    )
