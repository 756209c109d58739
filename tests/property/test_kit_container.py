"""The test kit against the container chart: random fires with faults and crashes, checked.

The chart's steps get stand-in code (each makes a named thing and its undo
removes it, so a leak is visible) and its guards pass, except ``valid_signal``
which refuses an unknown signal, as moby does, with an oracle saying so.
Its ``when`` conditions (``should_restart``, ``kill_ends``, ``stop_ends``,
``force``, ``shutdown``, ``auto_remove``) come from random params, and
entities are created with moby's data (a command, sometimes ``--rm``).

In CI (``HYPOTHESIS_PROFILE=ci``) this runs 100 examples of up to 30 steps
(22 of up to 25 otherwise), fires with a failing step, an undo that fails or
a crash among them; ``--hypothesis-show-statistics`` shows how many of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import engine
from engine.errors import InvalidParameter
from engine.testing import StandIns, stand_ins, state_machine
from statecharts.container import load_chart

SIGNALS = ("SIGTERM", "SIGKILL", "SIGHUP", "SIGUSR1", "9", "15")


def valid_signal(ctx: engine.Context) -> None:
    """moby refuses a signal it cannot parse; the stand-in knows a few."""
    signal = ctx.params.get("signal")
    if signal is not None and signal not in SIGNALS:
        raise InvalidParameter(f"Invalid signal: {signal}")


def valid_signal_oracle(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> str | None:
    """What valid_signal must answer: refuse anything but a known signal."""
    signal = params.get("signal")
    return "invalid_parameter" if signal is not None and signal not in SIGNALS else None


CHART = load_chart()
PARAMS = {"signal": st.sampled_from([*SIGNALS, "SIGBOGUS"]), "timeout": st.integers(0, 30)}
# The name is the chart's schema's default: the entity's own, with moby's slash.
DATA = st.fixed_dictionaries(
    {"cmd": st.just(["sleep", "1"])}, optional={"auto_remove": st.booleans()}
)


def with_valid_signal(made: StandIns) -> engine.Bindings:
    """The stand-ins, with the real-looking valid_signal."""
    return engine.Bindings(
        guards={**made.bindings.guards, "valid_signal": valid_signal}, steps=made.bindings.steps
    )


ContainerMachine = state_machine(
    CHART,
    stand_ins(CHART, change=with_valid_signal),  # fresh stand-ins (and their leak check) each run
    params=PARAMS,
    data=DATA,
    guard_oracles={"valid_signal": valid_signal_oracle},
)


# The ci profile (HYPOTHESIS_PROFILE=ci) is the one with 200 examples or more; this test
# sets its own counts for each, below.
CI = settings.default.max_examples >= 200

TestContainerChartEndToEnd = ContainerMachine.TestCase
TestContainerChartEndToEnd.settings = settings(
    max_examples=100 if CI else 22,  # about 50 s on the 2-core CI machine
    stateful_step_count=30 if CI else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
