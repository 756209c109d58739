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


# What imports() gives for an import whose module is computed at run time: no check can
# say where it leads, so the inner and outer rooms allow none but in DYNAMIC_ALLOWED. (The
# CLI imports a user's --bindings module by name, by design, outside those rooms.)
DYNAMIC = "<dynamic>"
DYNAMIC_ALLOWED = {
    # The OTLP exporter: a third-party package, chosen by the OTLP protocol setting.
    "engine/telemetry/_providers.py",
}


def imports(path: Path, root: Path = ROOT) -> list[str]:
    """The absolute names of the modules ``path`` (a file under ``root``) imports.

    Relative imports are resolved against the file's package; ``from . import x``
    names the submodule ``x`` if there is one, else the package. A call of
    ``importlib.import_module`` or ``__import__`` gives its argument if that is a
    literal absolute name, and DYNAMIC otherwise.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    module = path.relative_to(root).with_suffix("").parts
    package = module[:-1]  # the package of a module, and of a package's __init__ itself
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.extend(_from_import(node, package, root))
        elif isinstance(node, ast.Call) and _imports_dynamically(node.func):
            name = node.args[0] if node.args else None
            if (
                isinstance(name, ast.Constant)
                and isinstance(name.value, str)
                and not name.value.startswith(".")
            ):
                found.append(name.value)
            else:
                found.append(DYNAMIC)
    return found


def _from_import(node: ast.ImportFrom, package: tuple[str, ...], root: Path) -> list[str]:
    if node.level == 0:
        return [node.module or ""]
    base = package[: len(package) - (node.level - 1)]
    if node.module is not None:
        return [".".join((*base, node.module))]
    names = []
    for alias in node.names:
        sub = root.joinpath(*base, alias.name)
        is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
        names.append(".".join((*base, alias.name) if is_module else base))
    return names


def _imports_dynamically(func: ast.expr) -> bool:
    """``importlib.import_module``, ``import_module`` or ``__import__``."""
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_pure_rooms_import_nothing_outward_and_nothing_impure(room: str) -> None:
    files = sorted((ROOT / room).rglob("*.py"))
    assert files, room
    for file in files:
        for name in imports(file):
            top = name.split(".")[0]
            where = f"{file.relative_to(ROOT)} imports {name}"
            assert name != DYNAMIC, where
            assert top not in IMPURE, where
            if top == "engine":
                assert any(name == a or name.startswith(a + ".") for a in ALLOWED[room]), where


def test_statecharts_use_only_the_public_engine_api() -> None:
    for file in sorted((ROOT / "statecharts").rglob("*.py")):
        for name in imports(file):
            if name.split(".")[0] == "engine":
                assert name in ("engine", "engine.errors", "engine.locks"), f"{file} imports {name}"


def test_the_layering_test_sees_a_leak(tmp_path: Path) -> None:
    (tmp_path / "engine" / "core").mkdir(parents=True)
    (tmp_path / "engine" / "store").mkdir()
    (tmp_path / "engine" / "core" / "tables.py").touch()
    leak = tmp_path / "engine" / "core" / "leak.py"
    leak.write_text(
        "import sqlalchemy\n"
        "from engine.runtime import Engine\n"
        "from ..runtime.saga import Saga\n"
        "from .. import store, step\n"
        "from . import tables\n"
        "from .tables import Tables\n"
        "def later(name):\n"
        "    import importlib\n"
        "    importlib.import_module('engine.store.sql')\n"
        "    __import__('statecharts.container')\n"
        "    importlib.import_module(name)\n"
        "    importlib.import_module('.sql', 'engine.store')\n"
    )
    assert imports(leak, root=tmp_path) == [
        "sqlalchemy",
        "engine.runtime",
        "engine.runtime.saga",
        "engine.store",
        "engine",  # step is a name in engine, not a module
        "engine.core.tables",
        "engine.core.tables",
        "importlib",
        "engine.store.sql",
        "statecharts.container",
        DYNAMIC,
        DYNAMIC,
    ]


# The outer rooms depend inward and never on each other (DESIGN.md). The API sees the
# engine through its public API only; the export room reads charts as data.
OUTER = {
    "engine/api": {"engine", "engine.errors", "engine.api", "engine._lazy"},
    # docker's Engine API: an adapter over the API room's container service Protocol
    # (and its shared checks, ps's STATUS among them).
    "engine/dockerapi": {"engine", "engine.errors", "engine.api", "engine.dockerapi"},
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
            if name == DYNAMIC:
                assert file.relative_to(ROOT).as_posix() in DYNAMIC_ALLOWED, where
                continue
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
