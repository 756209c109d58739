"""Dependencies point inward: the model and the core reach for nothing outside."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What each room may import from the rest of the project (besides itself).
ALLOWED = {
    "engine/model": {"engine.errors", "engine.model"},
    "engine/core": {"engine.errors", "engine.model", "engine.core"},
}
# Standard-library and third-party modules that do I/O, keep time or start threads.
IMPURE = {
    "asyncio",
    "datetime",
    "grpc",
    "io",
    "multiprocessing",
    "opentelemetry",
    "os",
    "pathlib",
    "random",
    "requests",
    "shutil",
    "signal",
    "socket",
    "sqlalchemy",
    "subprocess",
    "sys",
    "tempfile",
    "threading",
    "time",
    "urllib",
}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_pure_rooms_import_nothing_outward_and_nothing_impure(room: str) -> None:
    files = sorted((ROOT / room).rglob("*.py"))
    assert files, room
    for file in files:
        for name in imports(file):
            top = name.split(".")[0]
            where = f"{file.relative_to(ROOT)} imports {name}"
            assert top not in IMPURE, where
            if top == "engine":
                assert any(name == a or name.startswith(a + ".") for a in ALLOWED[room]), where


def test_statecharts_use_only_the_public_engine_api() -> None:
    for file in sorted((ROOT / "statecharts").rglob("*.py")):
        for name in imports(file):
            if name.split(".")[0] == "engine":
                assert name in ("engine", "engine.errors", "engine.locks"), f"{file} imports {name}"


def test_the_layering_test_sees_a_leak(tmp_path: Path) -> None:
    leak = tmp_path / "leak.py"
    leak.write_text("import sqlalchemy\nfrom engine.runtime import Engine\n")
    assert imports(leak) == ["sqlalchemy", "engine.runtime"]


# The outer rooms depend inward and never on each other (DESIGN.md). The API sees the
# engine through its public API only; the export room reads charts as data.
OUTER = {
    "engine/api": {"engine", "engine.errors", "engine.api", "engine._lazy"},
    "engine/export": {"engine.core", "engine.errors", "engine.model", "engine.export"},
    # The telemetry room implements the Observer port: it sees the port and the errors.
    "engine/telemetry": {"engine.ports", "engine.errors", "engine.telemetry"},
}


@pytest.mark.parametrize("room", sorted(OUTER))
def test_outer_rooms_depend_inward_only(room: str) -> None:
    files = sorted((ROOT / room).rglob("*.py"))
    assert files, room
    for file in files:
        if "_pb2" in file.name:
            continue  # generated: imports only grpc, protobuf and its own package
        for name in imports(file):
            where = f"{file.relative_to(ROOT)} imports {name}"
            assert name.split(".")[0] != "statecharts", where
            if name.split(".")[0] == "engine":
                allowed = OUTER[room]
                # "engine" itself is the public API; it allows no submodule by prefix.
                assert name in allowed or any(
                    name.startswith(a + ".") for a in allowed if a != "engine"
                ), where


def test_only_the_daemon_composition_root_knows_the_container_chart() -> None:
    for file in sorted((ROOT / "engine").rglob("*.py")):
        if file.relative_to(ROOT).as_posix() == "engine/daemon.py":
            continue
        for name in imports(file):
            assert name.split(".")[0] != "statecharts", f"{file.relative_to(ROOT)} imports {name}"
