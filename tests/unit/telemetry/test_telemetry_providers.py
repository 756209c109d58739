"""The providers ``chartd serve --otel`` builds: which exporter, which resource, when none."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from engine.daemon import DaemonConfig
from engine.errors import InvalidParameter
from engine.telemetry import Telemetry, check_exporter, providers


@pytest.fixture(autouse=True)
def _no_ambient_otel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_off_builds_nothing() -> None:
    assert providers("off", version="1.2.3") is None


def test_console_names_the_service_and_flushes_on_shutdown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    built = providers("console", version="1.2.3")
    assert built is not None
    observer = Telemetry(tracer_provider=built.tracer_provider, meter_provider=built.meter_provider)
    observer.transition_started("job", "e1", "start", "first", None)
    observer.transition("job", "e1", "start", "committed", 0.01, None)
    built.shutdown()
    err = capsys.readouterr().err
    assert '"name": "chartd.fire job.start"' in err
    assert '"name": "chartd.transition.duration"' in err
    assert '"service.name": "chartd"' in err and '"service.version": "1.2.3"' in err


def test_the_standard_variables_name_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chartd-eu-1")
    built = providers("console", version="1.2.3")
    assert built is not None
    assert isinstance(built.tracer_provider, TracerProvider)
    assert built.tracer_provider.resource.attributes["service.name"] == "chartd-eu-1"
    built.shutdown()


def test_otel_sdk_disabled_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert providers("console", version="1.2.3") is None
    assert providers("otlp", version="1.2.3") is None  # not even the package is needed


def test_unknown_exporters_and_protocols_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameter, match=r"invalid --otel 'zipkin': use off, console, otlp"):
        check_exporter("zipkin")
    with pytest.raises(InvalidParameter, match="invalid --otel"):
        DaemonConfig.resolve(tmp_path, otel="on")
    assert DaemonConfig.resolve(tmp_path).otel == "off"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(InvalidParameter, match=r"OTLP protocol 'http/json'.*grpc or http/protobuf"):
        check_exporter("otlp")


def test_otlp_names_the_package_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Absent whether or not it is installed: None in sys.modules is how Python says so.
    for module in (
        "opentelemetry.exporter.otlp.proto.grpc",
        "opentelemetry.exporter.otlp.proto.http",
    ):
        monkeypatch.setitem(sys.modules, module, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="needs the package opentelemetry-exporter-otlp"):
        DaemonConfig.resolve(tmp_path, otel="otlp")
