"""Health checks on a real daemon: starting, healthy, unhealthy, timeouts, pause, a restart.

Probes run every 100 ms here (moby accepts 1 ms and up); a probe's outcome is
a file in ``tmp_path`` that the test creates or removes. Every wait is on a
condition, never a fixed sleep.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from api_daemon import Daemon, eventually, inspect, ok

FAST = ("--health-interval", "100ms")


def health(daemon: Daemon, name: str) -> dict[str, Any]:
    found: dict[str, Any] = inspect(daemon, name)["State"]["Health"]
    return found


def status_in_ps(daemon: Daemon, name: str) -> str:
    listed = [json.loads(line) for line in ok(daemon, "ps", "-a", "--format", "json").splitlines()]
    return str(next(c for c in listed if c["Names"] == name)["Status"])


def health_events(daemon: Daemon, name: str) -> list[str]:
    out = ok(daemon, "events", "--after", "0", "--until", "0s", "--format", "json")
    found = [json.loads(line) for line in out.splitlines()]
    return [
        e["Action"]
        for e in found
        if e["Actor"]["Attributes"]["name"] == name and e["Action"].startswith("health_status")
    ]


def test_starting_then_healthy_then_unhealthy_after_the_retries(
    daemon: Daemon, tmp_path: Path
) -> None:
    flag = tmp_path / "ok"
    ok(
        daemon, "run", "-d", "--name", "hc-cycle", "--health-cmd", f"test -f {flag} && echo fine",
        *FAST, "--health-retries", "3", "--health-start-period", "1h",
        "--health-start-interval", "100ms", "sleep", "300",
    )  # fmt: skip
    # Within the start period a failure does not count: still starting, streak 0.
    eventually(lambda: len(health(daemon, "hc-cycle")["Log"]) >= 2, "two failed probes")
    found = health(daemon, "hc-cycle")
    assert (found["Status"], found["FailingStreak"]) == ("starting", 0)
    assert {e["ExitCode"] for e in found["Log"]} == {1}
    assert status_in_ps(daemon, "hc-cycle").endswith(" (health: starting)")

    flag.touch()
    eventually(lambda: health(daemon, "hc-cycle")["Status"] == "healthy", "healthy")
    found = health(daemon, "hc-cycle")
    assert found["FailingStreak"] == 0 and found["Log"][-1]["Output"] == "fine\n"
    assert status_in_ps(daemon, "hc-cycle").endswith(" (healthy)")

    # Out of the starting status the start period no longer matters: 3 failures.
    flag.unlink()
    eventually(lambda: health(daemon, "hc-cycle")["Status"] == "unhealthy", "unhealthy")
    found = health(daemon, "hc-cycle")
    assert found["FailingStreak"] >= 3
    assert len(found["Log"]) == 5  # the last five
    assert status_in_ps(daemon, "hc-cycle").endswith(" (unhealthy)")
    # An unhealthy container is not restarted: it is still running its first process.
    assert inspect(daemon, "hc-cycle")["RestartCount"] == 0
    assert health_events(daemon, "hc-cycle") == [
        "health_status: healthy",
        "health_status: unhealthy",
    ]
    ok(daemon, "rm", "-f", "hc-cycle")


def test_a_probe_that_outlives_its_timeout_fails(daemon: Daemon) -> None:
    ok(
        daemon, "run", "-d", "--name", "hc-slow", "--health-cmd", "echo started; sleep 30",
        *FAST, "--health-timeout", "200ms", "--health-retries", "1", "sleep", "300",
    )  # fmt: skip
    eventually(lambda: health(daemon, "hc-slow")["Status"] == "unhealthy", "unhealthy")
    entry = health(daemon, "hc-slow")["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (200ms): started\n"
    ok(daemon, "rm", "-f", "hc-slow")


def test_pause_stops_the_probes_and_unpause_resumes_them_with_the_status_kept(
    daemon: Daemon, tmp_path: Path
) -> None:
    flag = tmp_path / "ok"
    flag.touch()
    for name in ("hc-paused", "hc-witness"):
        ok(
            daemon, "run", "-d", "--name", name, "--health-cmd", f"test -f {flag}", *FAST,
            "sleep", "300",
        )  # fmt: skip
    eventually(lambda: health(daemon, "hc-paused")["Status"] == "healthy", "healthy")
    ok(daemon, "pause", "hc-paused")
    before = health(daemon, "hc-paused")
    assert before["Status"] == "healthy"
    assert status_in_ps(daemon, "hc-paused").endswith(" (Paused)")
    # The witness is probed every 100 ms: five new probes of it, none of the paused one.
    seen = health(daemon, "hc-witness")["Log"][-1]["End"]
    for _ in range(5):
        eventually(
            lambda s=seen: health(daemon, "hc-witness")["Log"][-1]["End"] != s, "a witness probe"
        )
        seen = health(daemon, "hc-witness")["Log"][-1]["End"]
    assert health(daemon, "hc-paused") == before

    ok(daemon, "unpause", "hc-paused")
    assert health(daemon, "hc-paused")["Status"] == "healthy"  # not reset to starting
    last = before["Log"][-1]["End"]
    eventually(lambda: health(daemon, "hc-paused")["Log"][-1]["End"] != last, "probed again")
    ok(daemon, "rm", "-f", "hc-paused", "hc-witness")


def test_stopped_containers_are_not_probed_and_a_start_resets_to_starting(
    daemon: Daemon, tmp_path: Path
) -> None:
    flag = tmp_path / "ok"
    flag.touch()
    ok(daemon, "run", "-d", "--name", "hc-stop", "--health-cmd", f"test -f {flag}", *FAST,
       "--health-start-period", "1h", "sleep", "300")  # fmt: skip
    eventually(lambda: health(daemon, "hc-stop")["Status"] == "healthy", "healthy")
    ok(daemon, "stop", "-t", "1", "hc-stop")
    stopped = health(daemon, "hc-stop")
    assert stopped["Status"] == "healthy"  # moby keeps the last status of a stopped container
    # Probes may run until the process exits (as moby's); none after: the exit
    # cancelled the timer, and the chart would refuse it.
    events = [t["event"] for t in json.loads(ok(daemon, "history", "hc-stop", "--format", "json"))]
    after_exit = events[events.index("exit") :]
    assert not {"health_check", "probe_passed", "probe_failed"} & set(after_exit)
    assert events[-1] == "exit"
    flag.unlink()
    ok(daemon, "start", "hc-stop")
    found = health(daemon, "hc-stop")
    assert (found["Status"], found["FailingStreak"]) == ("starting", 0)
    ok(daemon, "rm", "-f", "hc-stop")


def test_options_are_checked_as_docker_checks_them(daemon: Daemon) -> None:
    done = daemon.cli("create", "--no-healthcheck", "--health-cmd", "true", "sleep", "1")
    assert (done.returncode, done.stderr) == (
        125,
        "--no-healthcheck conflicts with --health-* options\n",
    )
    done = daemon.cli("create", "--health-interval=-1s", "sleep", "1")
    assert (done.returncode, done.stderr) == (125, "--health-interval cannot be negative\n")
    done = daemon.cli("create", "--health-timeout", "5", "sleep", "1")
    assert done.returncode == 2 and 'time: missing unit in duration "5"' in done.stderr
    done = daemon.cli("create", "--health-cmd", "true", "--health-interval", "500us", "sleep", "1")
    assert (done.returncode, done.stderr) == (
        1,
        "Error response from daemon: Interval in Healthcheck cannot be less than 1ms\n",
    )
    ok(daemon, "create", "--name", "hc-none", "--no-healthcheck", "sleep", "60")
    ok(daemon, "start", "hc-none")
    state = inspect(daemon, "hc-none")
    assert state["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    assert "Health" not in state["State"]
    assert status_in_ps(daemon, "hc-none").startswith("Up ")
    assert "(" not in status_in_ps(daemon, "hc-none")
    ok(daemon, "rm", "-f", "hc-none")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["shutdown", "crash"])
def test_probing_goes_on_across_a_daemon_restart(tmp_path: Path, stop: int) -> None:
    flag = tmp_path / "ok"
    flag.touch()
    daemon = Daemon(tmp_path / "state")
    daemon.start()
    try:
        ok(daemon, "run", "-d", "--name", "hc-restart", "--restart", "always",
           "--health-cmd", f"test -f {flag}", *FAST, "sleep", "300")  # fmt: skip
        eventually(lambda: health(daemon, "hc-restart")["Status"] == "healthy", "healthy")
        kept = health(daemon, "hc-restart")["Log"]
        # A shutdown stops the container; after a crash, the restore kills what is left.
        daemon.stop(stop)
        daemon.start()
        # Restarted by its policy: health starting again, the log kept, probes again.
        eventually(lambda: health(daemon, "hc-restart")["Status"] == "healthy", "healthy again")
        found = health(daemon, "hc-restart")
        assert found["Log"][0]["Start"] >= kept[0]["Start"]
        assert found["Log"][-1]["Start"] > kept[-1]["End"]
        assert inspect(daemon, "hc-restart")["State"]["Running"]
        ok(daemon, "rm", "-f", "hc-restart")
    finally:
        assert daemon.stop() == 0, daemon.logs()
