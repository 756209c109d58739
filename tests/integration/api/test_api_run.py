"""``chartd run`` against a real daemon: start failures, signals, the log's two streams."""

from __future__ import annotations

from pathlib import Path

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
