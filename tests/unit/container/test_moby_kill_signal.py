"""A kill's signal is checked as moby's ContainerKill checks it.

moby reads a number with Go's Atoi (a sign allowed) and then asks whether
the platform has such a signal: ``docker kill -s 999`` (or 32, 33, -5) is
``the linux daemon does not support signal N``, where chartd once said
``invalid signal`` for all of them, and refused ``+10``, which moby sends.
"""

from __future__ import annotations

import signal

import pytest

from engine.errors import InvalidParameter
from statecharts.container import moby


@pytest.mark.parametrize(
    ("given", "number"),
    [("9", 9), ("+10", 10), ("SIGUSR1", 10), ("usr1", 10), ("31", 31), ("34", 34), ("64", 64)],
)
def test_signals_moby_sends(given: str, number: int) -> None:
    assert moby.kill_signal(given) == number


def test_the_real_time_names_are_the_platforms() -> None:
    assert moby.kill_signal("RTMIN") == signal.SIGRTMIN
    assert moby.kill_signal("RTMAX") == signal.SIGRTMAX


@pytest.mark.parametrize("given", ["32", "33", "65", "999", "-5", "-9", "4294967297"])
def test_numbers_the_platform_has_no_signal_for(given: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        moby.kill_signal(given)
    assert refused.value.message == f"the linux daemon does not support signal {int(given)}"


@pytest.mark.parametrize("given", ["0", "BOGUS", "SIG", " 9", "9" * 20, "1.5"])
def test_what_is_no_signal(given: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        moby.kill_signal(given)
    assert refused.value.message == f"invalid signal: {given}"
