"""docker's create options the container service records: entrypoint, image, health check."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import InvalidParameter
from statecharts.container.creation import initial_data


def test_the_entrypoint_runs_before_the_command_and_the_rest_is_recorded() -> None:
    data = initial_data(
        ["echo hi"],
        {
            "entrypoint": ["sh", "-c"],
            "image": "alpine:3",
            "healthcheck": {"Test": ["CMD", "true"], "Retries": 2, "Unknown": 1},
        },
    )
    assert (data["cmd"], data["entrypoint"], data["image"]) == (
        ["sh", "-c", "echo hi"],
        ["sh", "-c"],
        "alpine:3",
    )
    assert data["healthcheck"] == {"Test": ["CMD", "true"], "Retries": 2}
    assert initial_data(["true"], {})["healthcheck"] is None
    assert initial_data([], {"entrypoint": ["true"]})["cmd"] == ["true"]


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"entrypoint": []}, "No command specified"),
        ({"image": "x" * 5000}, "invalid image name"),
        ({"healthcheck": []}, "an object is expected"),
        ({"healthcheck": {"Test": "true"}}, "Test is a list of strings"),
        ({"healthcheck": {"Test": ["x" * 70000]}}, "too large"),
        ({"healthcheck": {"Interval": "1s"}}, "Interval is an integer"),
        ({"healthcheck": {"Retries": True}}, "Retries is an integer"),
        ({"healthcheck": {"Timeout": -1}}, "Timeout in Healthcheck cannot be negative"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidParameter, match=why):
        initial_data([] if "entrypoint" in options else ["true"], options)  # type: ignore[arg-type]
