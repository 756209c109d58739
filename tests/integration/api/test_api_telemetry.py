"""``chartd serve --otel``: a real daemon exporting its traces and metrics to stderr."""

from __future__ import annotations

from pathlib import Path

from api_daemon import Daemon

from engine.api.chartd.v1 import containers_pb2 as c


def _start_a_container_and_stop(daemon: Daemon, name: str) -> str:
    """Start a container on ``daemon`` (so that the engine fires), stop the daemon; its log."""
    with daemon.client() as client:
        client.containers.Create(c.CreateContainerRequest(cmd=["sleep", "60"], name=name))
        client.containers.Start(c.StartContainerRequest(container=name))
    assert daemon.stop() == 0, daemon.logs()
    return daemon.logs()


def test_serve_with_console_telemetry_prints_spans_and_metrics_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    daemon = Daemon(tmp_path / "state")
    daemon.start("--otel", "console")
    logs = _start_a_container_and_stop(daemon, "traced")
    assert "telemetry: spans and metrics to console" in logs
    # Flushed at shutdown: the batched spans and the metrics of the whole run.
    assert '"name": "chartd.fire container.start"' in logs
    assert '"name": "chartd.step task_start"' in logs
    assert '"name": "chartd.transitions"' in logs
    assert '"service.name": "chartd"' in logs
    assert logs.rstrip().endswith("chartd stopped")


def test_serve_refuses_an_unknown_telemetry_exporter(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    refused = daemon.cli("serve", "--state-dir", str(daemon.state_dir), "--otel", "jaeger")
    assert refused.returncode == 1
    assert "invalid --otel 'jaeger': use off, console, otlp" in refused.stderr
    assert not daemon.socket.exists()


def test_serve_honours_otel_sdk_disabled(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    daemon.env["OTEL_SDK_DISABLED"] = "true"
    daemon.start("--otel", "console")
    logs = _start_a_container_and_stop(daemon, "untraced")
    assert "OTEL_SDK_DISABLED is true: no telemetry" in logs
    assert "chartd.fire" not in logs


def test_serve_takes_the_exporter_from_otel_traces_exporter(tmp_path: Path) -> None:
    # Off by default; the standard variable switches it on, as the SDK's own
    # auto-configuration would; --otel wins over it.
    daemon = Daemon(tmp_path / "state")
    daemon.env["OTEL_TRACES_EXPORTER"] = "console"
    daemon.start()
    logs = _start_a_container_and_stop(daemon, "by-env")
    assert '"name": "chartd.fire container.start"' in logs
    daemon = Daemon(tmp_path / "other")
    daemon.env["OTEL_TRACES_EXPORTER"] = "console"
    daemon.start("--otel", "off")
    assert "chartd.fire" not in _start_a_container_and_stop(daemon, "flag-wins")
    refused = Daemon(tmp_path / "bad")
    refused.env["OTEL_TRACES_EXPORTER"] = "zipkin"
    result = refused.cli("serve", "--state-dir", str(refused.state_dir))
    assert result.returncode == 1
    assert "invalid OTEL_TRACES_EXPORTER 'zipkin': use none, console or otlp" in result.stderr
