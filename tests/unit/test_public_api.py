"""The public API is small and deliberate: this test pins it."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import engine
import engine.errors


def own_docstring(obj: Any) -> str | None:
    """``obj``'s own docstring, cleaned; None if it has none of its own.

    ``inspect.getdoc`` would find a base class's docstring for a class without
    one, and a dataclass without one is given its signature as ``__doc__``.
    """
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not isinstance(doc, str):
        return None
    if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
        return None  # written by @dataclass
    return inspect.cleandoc(doc) or None


def test_own_docstring_is_not_inherited_nor_generated() -> None:
    class Documented:
        """Said here."""

    class Undocumented(Documented):
        pass

    @dataclasses.dataclass
    class Bare:
        x: int

    @dataclasses.dataclass
    class Described:
        """One x."""

        x: int

    assert inspect.getdoc(Undocumented) and inspect.getdoc(Bare)  # what getdoc would pass
    assert own_docstring(Undocumented) is None
    assert own_docstring(Bare) is None
    assert own_docstring(Documented) == "Said here."
    assert own_docstring(Described) == "One x."
    assert own_docstring(own_docstring) is not None


def test_engine_exports_exactly_the_public_names() -> None:
    assert sorted(engine.__all__) == [
        "Bindings",
        "Chart",
        "ConditionFn",
        "Context",
        "Engine",
        "Entity",
        "Event",
        "Page",
        "Plan",
        "Result",
        "Snapshot",
        "Step",
        "StepRecord",
        "TransitionRecord",
        "errors",
        "load_chart",
        "parse_chart",
        "step",
    ]
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_error_module_exports_the_taxonomy() -> None:
    assert sorted(engine.errors.__all__) == [
        "Cancelled",
        "Category",
        "ChartError",
        "ChartdError",
        "Conflict",
        "DeadlineExceeded",
        "Forbidden",
        "InvalidParameter",
        "NotFound",
        "NotImplemented",
        "NotModified",
        "Problem",
        "System",
        "Unavailable",
        "error_for",
    ]


def test_signatures_of_the_entry_points() -> None:
    assert str(inspect.signature(engine.step)) == (
        "(chart: 'Chart', snapshot: 'Snapshot', event: 'str', "
        "params: 'Mapping[str, Any] | None' = None, *, "
        "conditions: 'Mapping[str, ConditionFn] | None' = None, "
        "fields: 'Mapping[str, Any] | None' = None) -> 'Plan'"
    )
    assert list(inspect.signature(engine.load_chart).parameters) == ["path"]
    assert list(inspect.signature(engine.Chart.initial_snapshot).parameters) == [
        "self",
        "data",
        "conditions",
    ]


def test_plan_and_snapshot_fields() -> None:
    assert list(engine.Snapshot.__dataclass_fields__) == [
        "configuration",
        "data",
        "version",
        "history",
    ]
    assert {"snapshot", "steps", "guards", "transitions", "via", "exited", "entered"} <= set(
        engine.Plan.__dataclass_fields__
    )
    assert callable(engine.Snapshot.to_json) and callable(engine.Snapshot.from_json)


def test_every_public_name_has_a_docstring() -> None:
    for module in (engine, engine.errors):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
                assert own_docstring(obj), name


def test_engine_methods() -> None:
    public = {n for n in dir(engine.Engine) if not n.startswith("_")}
    assert public == {
        "charts",
        "close",
        "closed",
        "create",
        "create_many",
        "fire",
        "fire_many",
        "get",
        "history",
        "list",
        "migrate",
        "migration_plan",
        "open",
        "recover",
        "register",
        "run_due_timers",
        "sequence",
        "until",
        "watch",
    }
    assert list(inspect.signature(engine.Engine.fire).parameters) == [
        "self",
        "entity",
        "event",
        "params",
        "idempotency_key",
        "caused_by",
        "durable",
    ]
    assert list(inspect.signature(engine.Engine.create_many).parameters) == [
        "self",
        "chart",
        "items",
    ]
    assert list(inspect.signature(engine.Engine.fire_many).parameters) == [
        "self",
        "requests",
        "concurrency",
    ]
    assert list(inspect.signature(engine.Engine.open).parameters) == [
        "url",
        "clock",
        "observer",
        "timers",
        "limits",
        "node",
    ]


def test_the_test_kit_exports_exactly_its_public_names() -> None:
    import engine.testing  # noqa: PLC0415 (it imports hypothesis, a test dependency)

    assert sorted(engine.testing.__all__) == [
        "BindingsFactory",
        "CRASH_POINTS",
        "Crash",
        "Create",
        "Evolution",
        "Fault",
        "Fire",
        "GuardOracle",
        "Harness",
        "InjectedFault",
        "Invariant",
        "Restart",
        "Retry",
        "SimulatedCrash",
        "StandIns",
        "UNKNOWN_EVENT",
        "actions",
        "chart_documents",
        "charts",
        "events",
        "evolutions",
        "faults",
        "fires",
        "leaks",
        "mixed",
        "params",
        "stand_ins",
        "state_machine",
    ]
    assert list(inspect.signature(engine.testing.state_machine).parameters) == [
        "chart",
        "bindings",
        "faults",
        "crashes",
        "url",
        "params",
        "data",
        "guard_oracles",
        "invariants",
        "max_entities",
        "wrap_store",
        "events",
    ]


def test_the_telemetry_room_exports_exactly_its_public_names() -> None:
    import engine.telemetry  # noqa: PLC0415 (kept apart: the core never imports it)

    assert sorted(engine.telemetry.__all__) == [
        "EXPORTERS",
        "MetricsEndpoint",
        "MetricsTLS",
        "Providers",
        "StoreGauges",
        "Telemetry",
        "check_exporter",
        "providers",
        "scrape_reader",
    ]
    assert engine.telemetry.EXPORTERS == ("off", "console", "otlp")
    assert list(inspect.signature(engine.telemetry.Telemetry).parameters) == [
        "tracer_provider",
        "meter_provider",
    ]
    assert list(inspect.signature(engine.telemetry.providers).parameters) == [
        "exporter",
        "version",
        "metric_readers",
    ]
    for name in engine.telemetry.__all__:
        obj = getattr(engine.telemetry, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert own_docstring(obj), name


def test_the_observer_port_and_its_opentelemetry_adapter_agree() -> None:
    from engine.ports import Observer  # noqa: PLC0415
    from engine.runtime.engine import _QuietObserver  # noqa: PLC0415
    from engine.telemetry import Telemetry  # noqa: PLC0415

    methods = ["step", "step_started", "transition", "transition_started"]
    assert sorted(n for n in vars(Observer) if not n.startswith("_")) == methods
    for name in methods:
        port = inspect.signature(getattr(Observer, name))
        assert own_docstring(vars(Observer)[name]), name
        for adapter in (Telemetry, _QuietObserver):
            assert inspect.signature(getattr(adapter, name)) == port, (adapter, name)
