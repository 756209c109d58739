"""``chartd container prune`` on a real daemon: the prompt, the output, the filters.

A module of its own: a prune removes every stopped container of the daemon.
"""

from __future__ import annotations

import subprocess

from api_daemon import CHARTD, REPO, Daemon

PROMPT = (
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
)


def ok(daemon: Daemon, *args: str) -> str:
    done = daemon.cli(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def answering(daemon: Daemon, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CHARTD, "container", "prune", *args],
        cwd=REPO,
        env=daemon.env,
        input=answer,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stopped(daemon: Daemon, name: str, *options: str) -> str:
    cid = ok(daemon, "create", "--name", name, *options, "true").strip()
    return cid


def names(daemon: Daemon) -> set[str]:
    return set(ok(daemon, "ps", "-a", "--format", "{{.Names}}").split())


def test_prune_asks_first_and_does_nothing_unless_told_yes(daemon: Daemon) -> None:
    stopped(daemon, "p-ask")
    for answer in ("n\n", "\n", "", "yes\n"):
        done = answering(daemon, answer)
        assert (done.returncode, done.stdout, done.stderr) == (0, PROMPT, "")
        assert "p-ask" in names(daemon)
    cid = ok(daemon, "inspect", "-f", "{{.Id}}", "p-ask").strip()
    done = answering(daemon, " Y \n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == PROMPT + f"Deleted Containers:\n{cid}\n\nTotal reclaimed space: 0B\n"
    assert "p-ask" not in names(daemon)


def test_prune_force_removes_stopped_containers_only(daemon: Daemon) -> None:
    ok(daemon, "run", "-d", "--name", "p-running", "sh", "-c", "sleep 600")
    a = stopped(daemon, "p-a")
    b = ok(daemon, "run", "-d", "--name", "p-b", "sh", "-c", "exit 7").strip()
    assert ok(daemon, "wait", "p-b") == "7\n"
    out = ok(daemon, "container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and out.endswith(
        "\n\nTotal reclaimed space: 0B\n"
    )
    assert set(out.splitlines()[1:-2]) == {a, b}
    assert names(daemon) >= {"p-running"} and not names(daemon) & {"p-a", "p-b"}
    assert ok(daemon, "container", "prune", "--force") == "Total reclaimed space: 0B\n"


def test_prune_filters(daemon: Daemon) -> None:
    keep = stopped(daemon, "p-keep", "-l", "keep")
    gone = stopped(daemon, "p-gone", "-l", "env=test")
    assert ok(daemon, "container", "prune", "-f", "--filter", "until=1h") == (
        "Total reclaimed space: 0B\n"
    )
    out = ok(daemon, "container", "prune", "-f", "--filter", "label!=keep")
    assert out == f"Deleted Containers:\n{gone}\n\nTotal reclaimed space: 0B\n"
    out = ok(daemon, "container", "prune", "-f", "--filter", "label=keep", "--filter", "until=0s")
    assert out == f"Deleted Containers:\n{keep}\n\nTotal reclaimed space: 0B\n"


def test_prune_refuses_bad_filters(daemon: Daemon) -> None:
    for flt, message in [
        ("status=exited", "invalid filter 'status'"),
        ("until=soon", 'failed to parse value as time or duration: "soon"'),
    ]:
        done = daemon.cli("container", "prune", "-f", "--filter", flt)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == f"Error response from daemon: {message}\n"
