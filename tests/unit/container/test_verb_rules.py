"""The pure rules behind top, ps --filter, prune and logs: moby's, on plain inputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidParameter, System
from statecharts.container.listing import ListFilter
from statecharts.container.logcopy import entry
from statecharts.container.logread import (
    LogWindow,
    log_entries,
    parse_log_time,
    read_entries,
    tail_position,
)
from statecharts.container.top import check_ps_args, parse_ps_output

# -- top --------------------------------------------------------------------------------

PS_EF = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         100       1  0 10:01 ?        00:00:00 sh -c sleep 600
root         101     100  0 10:01 ?        00:00:00 sleep 600
"""


def test_top_keeps_the_rows_of_the_container_and_joins_the_command() -> None:
    top = parse_ps_output(PS_EF, {100, 101})
    assert top.titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert top.processes == [
        ["root", "100", "1", "0", "10:01", "?", "00:00:00", "sh -c sleep 600"],
        ["root", "101", "100", "0", "10:01", "?", "00:00:00", "sleep 600"],
    ]


def test_top_keeps_thread_lines_after_a_kept_process() -> None:
    output = "PID TID CMD\n100 - sh\n- 100 sh\n- 102 sh\n7 - other\n- 7 other\n"
    assert parse_ps_output(output, {100}).processes == [
        ["100", "-", "sh"],
        ["-", "100", "sh"],
        ["-", "102", "sh"],
    ]


def test_top_errors_are_moby_s() -> None:
    with pytest.raises(System, match=r"^Couldn't find PID field in ps output$"):
        parse_ps_output("USER CMD\nroot x\n", {1})
    with pytest.raises(System, match="Unexpected pid 'abc'"):
        parse_ps_output("PID CMD\nabc x\n", {1})
    with pytest.raises(System):
        parse_ps_output("", {1})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("-o pid,comm=PID", 'specifying "pid,comm=PID" is not allowed'),
        ("-ef -o user= PIDX", 'specifying "user=PIDX" is not allowed'),
        ("x" * 5000, "ps options longer than 4096 characters"),
        ("-ef\x00", "ps options may not contain NUL"),
    ],
)
def test_ps_options_that_are_refused(args: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        check_ps_args(args)
    assert caught.value.message == message


def test_ps_options_that_pass() -> None:
    for args in ("-ef", "aux", "-o pid=PID", "-o pid,comm", "a=PID"):
        check_ps_args(args)


# -- ps --filter -------------------------------------------------------------------------


def props(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "exited",
        "name": "/web-1",
        "labels": {"tier": "front", "env": "prod"},
        "exit_code": 3,
        "started": True,
        "health": "none",
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"color": ["red"]}, "invalid filter 'color'"),
        ({"status": ["sleepy"]}, "invalid filter 'status=sleepy'"),
        ({"health": ["fine"]}, "Unrecognised filter value for health: fine"),
        (
            {"exited": ["x"]},
            "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        ({"name": ["(a+)+$"]}, "invalid filter 'name=(a+)+$': repeated groups"),
        ({"name": ["a*b*c*d"]}, "more than 2 unbounded repetitions"),
        ({"name": ["(x)\\1"]}, "back-references are not supported"),
    ],
)
def test_bad_filters_are_refused_with_moby_s_messages(
    filters: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        ListFilter.of(filters)
    assert message in caught.value.message


def test_values_of_one_key_or_and_keys_and() -> None:
    chosen = ListFilter.of({"status": ["running", "exited"], "exited": ["1", "3"]})
    assert chosen.matches(**props())
    assert not chosen.matches(**props(exit_code=0))
    assert not chosen.matches(**props(status="created"))


def test_labels_must_all_match() -> None:
    assert ListFilter.of({"label": ["tier=front", "env"]}).matches(**props())
    assert not ListFilter.of({"label": ["tier=front", "team"]}).matches(**props())
    assert not ListFilter.of({"label": ["tier=back"]}).matches(**props())


def test_name_is_a_regular_expression_with_and_without_the_slash() -> None:
    assert ListFilter.of({"name": ["^web-1$"]}).matches(**props())
    assert ListFilter.of({"name": ["^/web"]}).matches(**props())
    assert ListFilter.of({"name": ["eb-"]}).matches(**props())
    assert not ListFilter.of({"name": ["^eb"]}).matches(**props())
    # a value that does not compile matches nothing, as moby skips it
    assert not ListFilter.of({"name": ["web["]}).matches(**props())


def test_exited_needs_a_container_that_ran_and_stopped() -> None:
    chosen = ListFilter.of({"exited": ["0"]})
    assert chosen.matches(**props(exit_code=0))
    assert not chosen.matches(**props(exit_code=0, started=False, status="created"))
    assert not chosen.matches(**props(exit_code=0, status="running"))


def test_health_and_status_lists_stopped() -> None:
    assert ListFilter.of({"health": ["none"]}).matches(**props())
    assert not ListFilter.of({"health": ["healthy"]}).matches(**props())
    assert ListFilter.of({"status": ["exited"]}).lists_stopped
    assert not ListFilter.of({"exited": ["0"]}).lists_stopped


def test_an_id_is_a_full_id_or_a_unique_prefix() -> None:
    ids = ["abc123", "abd456"]
    assert ListFilter.of({"id": ["abc"]}).id_matches("abc123", ids)
    assert not ListFilter.of({"id": ["ab"]}).id_matches("abc123", ids)  # ambiguous
    assert ListFilter.of({"id": ["ab", "abd456"]}).id_matches("abd456", ids)
    assert not ListFilter.of({"id": [""]}).id_matches("abc123", ids)
    assert ListFilter.of({}).id_matches("abc123", ids)


# -- logs --------------------------------------------------------------------------------


def write_log(path: Path, lines: list[tuple[str, str, int]]) -> None:
    path.write_bytes(b"".join(entry(text.encode(), stream, ns) for text, stream, ns in lines))


def test_tail_counts_whole_entries_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "x-json.log"
    write_log(log, [(f"{i}\n", "stdout", i) for i in range(5)])
    with log.open("ab") as f:
        f.write(b'{"log":"torn')  # the copier mid-write: not an entry yet
    for n, first in [(0, None), (1, "4\n"), (3, "2\n"), (5, "0\n"), (99, "0\n")]:
        entries, _ = read_entries(log, tail_position(log, n))
        assert (entries[0].data.decode() if entries else None) == first
        assert len(entries) == min(n, 5)
    assert tail_position(log, -1) == 0
    assert tail_position(tmp_path / "none.log", 3) == 0


def test_a_long_log_is_tailed_in_blocks(tmp_path: Path) -> None:
    log = tmp_path / "long-json.log"
    write_log(log, [("x" * 1000 + "\n", "stderr", i) for i in range(300)])
    entries, _ = read_entries(log, tail_position(log, 120))
    assert len(entries) == 120 and entries[0].time_ns == 180 and entries[0].stream == "stderr"


def test_foreign_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    log = tmp_path / "x-json.log"
    write_log(log, [("a\n", "stdout", 1)])
    with log.open("ab") as f:
        f.write(b"not json\n" + json.dumps({"log": "b\n"}).encode() + b"\n")
        f.write(entry(b"c\n", "stdout", 2) + b'{"log":')
    entries, position = read_entries(log, 0)
    assert [e.data for e in entries] == [b"a\n", b"c\n"]
    assert position == log.stat().st_size - len(b'{"log":')


def test_the_time_window_and_follow(tmp_path: Path) -> None:
    log = tmp_path / "x-json.log"
    write_log(log, [(f"{i}\n", "stdout", i * 10**9) for i in range(1, 6)])

    def read(window: LogWindow, **kw: Any) -> list[int]:
        found = log_entries(log, window, running=lambda: False, wait=lambda: None, **kw)
        return [e.time_ns // 10**9 for e in found]

    assert read(LogWindow()) == [1, 2, 3, 4, 5]
    assert read(LogWindow(since_ns=2 * 10**9, until_ns=4 * 10**9)) == [2, 3, 4]
    assert read(LogWindow(tail=2, since_ns=5 * 10**9)) == [5]
    # follow: new entries while the container runs; the end once it stopped
    looks = iter([True, True, False])
    appended: list[int] = []

    def wait() -> None:
        with log.open("ab") as f:
            f.write(entry(b"more\n", "stdout", 6 * 10**9 + len(appended)))
        appended.append(1)

    found = log_entries(log, LogWindow(tail=0, follow=True), running=lambda: next(looks), wait=wait)
    assert [e.data for e in found] == [b"more\n", b"more\n"]
    # follow ends once until has passed
    assert read(LogWindow(follow=True, until_ns=2 * 10**9), now_ns=time.time_ns) == [1, 2]


def test_log_times_are_rfc3339_nano_utc() -> None:
    assert parse_log_time("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_log_time("2025-01-02T03:04:05Z") == 1_735_787_045 * 10**9
    with pytest.raises(ValueError):
        parse_log_time("2025-01-02 03:04:05")
