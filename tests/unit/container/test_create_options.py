"""docker's create options the container service records: entrypoint, image, health check.

The service takes a health check as the CLI's options make it (moby's
HealthConfig, durations in seconds); the Engine API turns docker's JSON
(durations in nanoseconds) into it, and both end in the same checks.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.dockerapi.shapes import create_options
from engine.errors import InvalidParameter
from statecharts.container.creation import initial_data


def test_the_entrypoint_runs_before_the_command_and_the_rest_is_recorded() -> None:
    data = initial_data(
        ["echo hi"],
        {
            "entrypoint": ["sh", "-c"],
            "image": "alpine:3",
            "healthcheck": {"test": ["CMD", "true"], "retries": 2},
        },
    )
    assert (data["cmd"], data["entrypoint"], data["image"]) == (
        ["sh", "-c", "echo hi"],
        ["sh", "-c"],
        "alpine:3",
    )
    assert data["healthcheck"]["test"] == ["CMD", "true"]
    assert data["healthcheck"]["retries"] == 2
    assert "healthcheck" not in initial_data(["true"], {})
    assert initial_data([], {"entrypoint": ["true"]})["cmd"] == ["true"]


def test_dockers_healthcheck_json_becomes_the_services_in_seconds() -> None:
    body = {
        "Cmd": ["true"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_500_000_000, "Retries": 2},
    }
    options = create_options("web", body)
    assert options["healthcheck"] == {"test": ["CMD", "true"], "interval": 1.5, "retries": 2}
    data = initial_data(options.pop("cmd"), options)  # type: ignore[arg-type]
    assert (data["healthcheck"]["interval"], data["healthcheck"]["retries"]) == (1.5, 2)
    assert (
        create_options("web", {"Cmd": ["true"], "Healthcheck": {"Test": []}})["healthcheck"] is None
    )


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"entrypoint": []}, "No command specified"),
        ({"image": "x" * 5000}, "invalid image name"),
        ({"healthcheck": {"test": "true"}}, "a list of strings"),
        ({"healthcheck": {"test": ["CMD", "true"], "Unknown": 1}}, "unknown healthcheck option"),
        ({"healthcheck": {"test": ["CMD", "true"], "interval": "1s"}}, "duration in seconds"),
        ({"healthcheck": {"test": ["CMD", "true"], "retries": True}}, "must be an integer"),
        ({"healthcheck": {"test": ["CMD", "true"], "timeout": -1}}, "cannot be less than 1ms"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidParameter, match=why):
        initial_data([] if "entrypoint" in options else ["true"], options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("healthcheck", "why"),
    [
        ([], "an object is expected"),
        ({"Test": "true", "Interval": "1s"}, "invalid Interval"),
        ({"Test": ["CMD", "true"], "Retries": True}, "invalid Retries"),
        ({"Test": [1]}, "a list of strings"),
    ],
)
def test_a_bad_healthcheck_json_is_refused(healthcheck: Any, why: str) -> None:
    with pytest.raises(InvalidParameter, match=why):
        create_options("web", {"Cmd": ["true"], "Healthcheck": healthcheck})
