"""``chartd serve --metrics-addr``: a real daemon's metrics, scraped over real HTTP.

The scrape is read with prometheus-client's own parser of the text format,
as Prometheus reads it.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from api_daemon import CHARTD, REPO, Daemon, eventually
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(url: str, **options: object) -> Samples:
    """Every sample at ``url``: (name, sorted labels) -> value."""
    answer = httpx.get(url, timeout=30, **options)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when there is none yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


START = {"chartd_chart": "container", "chartd_event": "start", "chartd_outcome": "committed"}


def test_a_scrape_finds_the_counters_a_fire_moved(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    port = _free_port()
    daemon.start("--metrics-addr", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        assert f"serving metrics on {url}" in daemon.logs()
        before = scrape(url)
        assert value(before, "chartd_transitions_total", **START) == 0
        assert value(before, "chartd_timers_pending") == 0

        run = daemon.cli("run", "-d", "--name", "scraped", "sleep", "60")
        assert run.returncode == 0, run.stderr
        after = scrape(url)
        assert value(after, "chartd_transitions_total", **START) == 1
        assert value(after, "chartd_transition_duration_seconds_count", **START) == 1
        assert value(after, "chartd_transition_duration_seconds_bucket", **START, le="+Inf") == 1
        assert value(after, "chartd_transition_duration_seconds_sum", **START) > 0
        task_start = {
            "chartd_chart": "container",
            "chartd_step_name": "task_start",
            "chartd_step_phase": "do",
            "chartd_outcome": "ok",
        }
        assert value(after, "chartd_steps_total", **task_start) == 1
        running = {"chartd_chart": "container", "chartd_state": "running.active.health.none"}
        assert value(after, "chartd_entities", **running) == 1
        assert value(after, "process_resident_memory_bytes") > 0

        stopped = daemon.cli("stop", "scraped")
        assert stopped.returncode == 0, stopped.stderr
        last = scrape(url)
        stop = {**START, "chartd_event": "stop"}
        assert value(last, "chartd_transitions_total", **stop) == 1
        assert value(last, "chartd_entities", **running) == 0
        exited = {"chartd_chart": "container", "chartd_state": "exited"}
        assert value(last, "chartd_entities", **exited) == 1
    finally:
        assert daemon.stop() == 0, daemon.logs()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)


def test_a_stop_waiting_for_its_timeout_is_a_pending_timer(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    port = _free_port()
    daemon.start("--metrics-addr", f"localhost:{port}")
    url = f"http://localhost:{port}/metrics"
    stubborn = "trap '' TERM; while :; do sleep 1; done"
    stop = None
    try:
        assert daemon.cli("run", "-d", "--name", "stubborn", "sh", "-c", stubborn).returncode == 0
        # The stop waits up to its timeout for an exit SIGTERM does not bring.
        stop = subprocess.Popen(
            [*CHARTD, "stop", "-t", "120", "stubborn"], cwd=REPO, env=daemon.env
        )
        eventually(lambda: value(scrape(url), "chartd_timers_pending") == 1, "the stop's timer")
        assert daemon.cli("kill", "stubborn").returncode == 0
        assert stop.wait(60) == 0
        eventually(lambda: value(scrape(url), "chartd_timers_pending") == 0, "no timer left")
    finally:
        if stop is not None and stop.poll() is None:
            stop.kill()
            stop.wait()
        assert daemon.stop() == 0, daemon.logs()


def test_metrics_beyond_loopback_need_mutual_tls_and_bad_addresses_are_refused(
    tmp_path: Path,
) -> None:
    daemon = Daemon(tmp_path / "state")
    serve = ("serve", "--state-dir", str(daemon.state_dir), "--metrics-addr")
    for addr in ("0.0.0.0:9464", "[::]:9464", "192.0.2.1:9464", "example.com:9464"):
        refused = daemon.cli(*serve, addr)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr == (
            f"Error: --metrics-addr {addr} is not a loopback "
            "address: serving metrics beyond this machine needs mutual TLS (--tls-cert, "
            "--tls-key and --tls-client-ca), or use 127.0.0.1\n"
        )
    for addr in ("9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":9464", "", "a:x"):
        refused = daemon.cli(*serve, addr)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr == (
            f"Error: invalid --metrics-addr {addr!r}: use HOST:PORT, e.g. 127.0.0.1:9464\n"
        )
    assert not daemon.socket.exists()


def test_a_taken_metrics_port_stops_the_start_before_any_container_is_touched(
    tmp_path: Path,
) -> None:
    daemon = Daemon(tmp_path / "state")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = daemon.cli(
            "serve", "--state-dir", str(daemon.state_dir), "--metrics-addr", f"127.0.0.1:{port}"
        )
    assert refused.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not daemon.socket.exists()
