"""--format as docker's CLI renders it: tables, ps contexts, inspect templates, update's checks."""

from __future__ import annotations

import json

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_format import (
    FormatFailed,
    check_ps_format,
    inspect_output,
    parse_inspect_format,
    ps_output,
    tabwrite,
)
from engine.cli_update import restart_format_error

NOW = 1_700_000_100.0


def summary(name: str, state: str = "running", **labels: str) -> c_pb2.ContainerSummary:
    return c_pb2.ContainerSummary(
        id=(name * 64)[:64],
        name="/" + name,
        cmd=["sh", "-c", "sleep 600 && echo a long command"],
        created=Timestamp(seconds=1_700_000_000),
        started_at=Timestamp(seconds=1_700_000_040),
        state=state,
        labels=labels,
    )


def test_tabwrite_aligns_tab_terminated_cells_per_block_as_go() -> None:
    # columns at least 10 wide, 3 spaces after the widest cell
    assert tabwrite("a\tbb\tc\nlonger cell\tx\ty\n") == (
        "a" + " " * 13 + "bb" + " " * 8 + "c\n" + "longer cell   x" + " " * 9 + "y\n"
    )
    # the last cell of a line is not aligned; a line without the column ends its block
    assert tabwrite("aaaaaaaaaaaa\tb\nc\nd\te\n") == "aaaaaaaaaaaa   b\nc\nd         e\n"
    assert tabwrite("PID\tCMD\n1\tsh\n", min_width=20) == (
        "PID" + " " * 17 + "CMD\n1" + " " * 19 + "sh\n"
    )


def test_ps_templates_and_tables() -> None:
    found = [summary("a", tier="web"), summary("b", "exited")]
    assert ps_output(found, '{{.Names}} {{.State}} {{.Label "tier"}}', NOW, True) == (
        "a running web\nb exited \n"
    )
    assert ps_output(found, "table {{.Names}}\\t{{.State}}", NOW, True) == (
        "NAMES     STATE\na         running\nb         exited\n"
    )
    assert ps_output(found, "table {{.ID}}\\t{{upper .Names}}", NOW, False).splitlines()[0] == (
        "CONTAINER ID" + " " * 55 + "NAMES"
    )
    lines = ps_output(found, "json", NOW, True).splitlines()
    first = json.loads(lines[0])
    assert sorted(first) == sorted(
        ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names",
         "Networks", "Ports", "RunningFor", "Size", "State", "Status"]
    )  # fmt: skip
    assert (first["ID"], first["Labels"], first["Status"]) == (
        "a" * 12,
        "tier=web",
        "Up About a minute",
    )
    assert first["Command"] == '"sh -c \'sleep 600 &&…"'
    assert ps_output([], "table {{.ID}}", NOW, True) == "CONTAINER ID\n"


@pytest.mark.parametrize(
    ("fmt", "start"),
    [
        ("{{.ID", "failed to parse template: template: :1: unclosed action"),
        ("{{.Nope}}", 'failed to execute template: template: :1:2: executing "" at <.Nope>'),
        ('{{.Label "a" "b"}}', "failed to execute template:"),
    ],
)
def test_a_ps_format_is_checked_before_the_listing(fmt: str, start: str) -> None:
    with pytest.raises(FormatFailed) as caught:
        check_ps_format(fmt)
    assert caught.value.message.startswith(start) and caught.value.status == 1


def test_inspect_templates() -> None:
    docs = [{"Name": "/a", "State": {"Status": "running"}}, {"Name": "/b", "State": {}}]
    assert inspect_output(docs, parse_inspect_format("{{.Name}}")) == ("/a\n/b\n", [])
    out, errors = inspect_output(docs, parse_inspect_format("{{.State.Status}}"))
    assert out == "running\n"
    assert errors == [
        'template parsing error: template: :1:2: executing "" at <.State.Status>: '
        'map has no entry for key "Status"'
    ]
    assert inspect_output(docs[1:], parse_inspect_format("{{.X}}"))[0] == "\n"
    assert (
        inspect_output(docs, parse_inspect_format("json"))[0]
        == json.dumps(docs, separators=(",", ":")) + "\n"
    )
    with pytest.raises(FormatFailed) as caught:
        parse_inspect_format("{{if}}")
    assert (caught.value.message, caught.value.status) == (
        "template parsing error: template: :1: missing value for if",
        64,
    )


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        ("always", None),
        ("on-failure:3", None),
        ("on-failure:-1", None),  # the daemon refuses it, not the CLI
        ("bogus", None),
        (":3", "invalid restart policy format: no policy provided before colon"),
        ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
        (
            "on-failure:99999999999999999999",
            "invalid restart policy format: maximum retry count must be an integer",
        ),
    ],
)
def test_update_checks_the_policy_format_as_docker_s_cli(policy: str, error: str | None) -> None:
    assert restart_format_error(policy) == error
