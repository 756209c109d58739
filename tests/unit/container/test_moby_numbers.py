"""Numbers in signals and restart policies are read as moby reads them (Go's strconv.Atoi).

Python's ``str.isdigit`` and ``int`` take digits Go does not: ``'٩'`` was
SIGKILL, ``'²'`` an INTERNAL error, and a retry count past int32 was stored
and then broke every inspect of the container.
"""

from __future__ import annotations

import pytest

from engine.errors import InvalidParameter
from statecharts.container import moby

NOT_AN_INTEGER = "invalid restart policy format: maximum retry count must be an integer"


@pytest.mark.parametrize(
    "text",
    [
        *["٩", "²", "\uff19", "\U0001d7d7", "1\u0665", "9" * 5000, "", " "],
        # moby's real-time names stop at RTMIN+15 and RTMAX-14, and have no other sign.
        *["RTMIN+16", "RTMAX-15", "RTMIN-1", "RTMAX+1", "RTMIN+0", "RTMIN+01", "RTMIN3"],
    ],
)
def test_only_ascii_digits_and_docker_names_are_signals(text: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        moby.parse_signal(text)
    assert refused.value.message == f"invalid signal: {text}"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        *[("9", 9), ("15", 15), ("KILL", 9), ("sigterm", 15), (10, 10)],
        *[("RTMIN", 34), ("rtmin+3", 37), ("SIGRTMIN+15", 49), ("RTMAX-14", 50), ("RTMAX", 64)],
    ],
)
def test_docker_signals_still_parse(text: str | int, number: int) -> None:
    assert moby.parse_signal(text) == number


@pytest.mark.parametrize(
    "count",
    ["2147483648", "4294967296", "9223372036854775808", "9" * 5000, "٣", "²", " 3", "3_0", "3 "],
)
def test_a_retry_count_past_int32_or_not_in_ascii_digits_is_refused(count: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        moby.parse_restart_policy(f"on-failure:{count}")
    assert refused.value.message == NOT_AN_INTEGER


@pytest.mark.parametrize(("count", "kept"), [("2147483647", 2**31 - 1), ("+3", 3), ("0", 0)])
def test_retry_counts_atoi_takes_are_kept(count: str, kept: int) -> None:
    policy = moby.parse_restart_policy(f"on-failure:{count}")
    assert (policy.name, policy.maximum_retry_count) == ("on-failure", kept)
