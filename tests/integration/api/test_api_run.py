"""``chartd run`` against a real daemon: start failures, signals, the log's two streams."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from api_daemon import Daemon


def test_run_detached_with_rm_exits_with_the_exec_failures_code(
    daemon: Daemon, tmp_path: Path
) -> None:
    # Auto-remove deletes the container as soon as its start failed: the code
    # comes from the failure itself, as docker's CLI reads it from the message.
    missing = daemon.cli("run", "-d", "--rm", "--", "no-such-command-here")
    assert missing.returncode == 127, missing.stderr
    assert "executable file not found" in missing.stderr
    plain = tmp_path / "not-executable"
    plain.write_text("echo hi\n")
    plain.chmod(0o644)
    refused = daemon.cli("run", "-d", "--rm", "--", str(plain))
    assert refused.returncode == 126, refused.stderr
    assert "permission denied" in refused.stderr
    folder = daemon.cli("run", "-d", "--rm", "--", str(tmp_path))
    assert folder.returncode == 126, folder.stderr
    assert daemon.cli("ps", "-a", "-q").stdout == ""


def _attached(daemon: Daemon, *args: str) -> subprocess.Popen[str]:
    """A foreground ``chartd run ARGS...``, once the container's first line came through."""
    proc = daemon.popen("run", *args)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "tick\n", proc.stderr
    return proc


def _exit_after(proc: subprocess.Popen[str], sig: int) -> tuple[int, float]:
    """Send ``sig`` to the CLI; its exit status and how long it took to exit."""
    began = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    return code, time.monotonic() - began


TICKING = ("sh", "-c", "while :; do echo tick; sleep 0.05; done")


def test_ctrl_c_on_run_goes_to_the_container_and_returns_with_its_exit(daemon: Daemon) -> None:
    # docker's sig-proxy: the signal goes to the container, and run returns once
    # it exited, with its code (130: killed by SIGINT); --rm removes it.
    proc = _attached(daemon, "--rm", "--name", "ctrl-c-rm", "--", *TICKING)
    code, took = _exit_after(proc, signal.SIGINT)
    assert code == 130
    assert took < 2.0, f"run took {took:.1f}s to return after Ctrl-C"
    assert "ctrl-c-rm" not in daemon.cli("ps", "-a").stdout

    proc = _attached(daemon, "--name", "ctrl-c-kept", "--", *TICKING)
    code, took = _exit_after(proc, signal.SIGINT)
    assert (code, took < 2.0) == (130, True), took
    state = json.loads(daemon.cli("inspect", "ctrl-c-kept").stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 130)


def test_run_waits_for_a_container_that_ignores_the_signal(daemon: Daemon) -> None:
    ignoring = ("sh", "-c", "trap '' INT; while :; do echo tick; sleep 0.05; done")
    proc = _attached(daemon, "--rm", "--name", "deaf", "--", *ignoring)
    proc.send_signal(signal.SIGINT)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)  # as docker's: the container decides
    assert "deaf" in daemon.cli("ps").stdout
    code, _ = _exit_after(proc, signal.SIGTERM)
    assert code == 143
    assert "deaf" not in daemon.cli("ps", "-a").stdout


def test_run_without_sig_proxy_leaves_the_container_running(daemon: Daemon) -> None:
    proc = _attached(daemon, "--sig-proxy=false", "--name", "unproxied", "--", *TICKING)
    code, took = _exit_after(proc, signal.SIGINT)
    assert (code, took < 2.0) == (130, True), took
    assert "unproxied" in daemon.cli("ps").stdout
    assert daemon.cli("rm", "-f", "unproxied").returncode == 0


_RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


def test_logs_keep_the_streams_apart_in_dockers_json_file(daemon: Daemon) -> None:
    script = "echo out; echo err >&2; echo '<&>' ; printf partial"
    done = daemon.cli("run", "--name", "streams", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("out\n<&>\npartial", "err\n")
    logs = daemon.cli("logs", "streams")
    assert (logs.stdout, logs.stderr) == ("out\n<&>\npartial", "err\n")

    path = Path(json.loads(daemon.cli("inspect", "streams").stdout)[0]["LogPath"])
    assert path.name.endswith("-json.log")
    text = path.read_text()
    assert "\\u003c\\u0026\\u003e" in text  # Go's encoding/json, as docker writes it
    entries = [json.loads(line) for line in text.splitlines()]
    assert all(set(e) == {"log", "stream", "time"} for e in entries)
    assert all(_RFC3339_NANO.fullmatch(e["time"]) for e in entries), entries
    out = [e["log"] for e in entries if e["stream"] == "stdout"]
    assert out == ["out\n", "<&>\n", "partial"]
    assert [e["log"] for e in entries if e["stream"] == "stderr"] == ["err\n"]
    assert daemon.cli("rm", "streams").returncode == 0
