"""Generate the Python code of chartd's gRPC API from its .proto files.

The sources are ``engine/api/chartd/v1/*.proto`` (package ``chartd.v1``); the
output, committed beside them, is for each ``NAME.proto``:

* ``NAME_pb2.py`` and ``NAME_pb2_grpc.py``: messages and stubs (grpcio-tools),
* ``NAME_pb2.pyi`` and ``NAME_pb2_grpc.pyi``: their types (mypy-protobuf).

protoc writes ``from chartd.v1 import ...`` (the import path of the .proto
files); the code lives in ``engine.api.chartd.v1``, so those imports are
rewritten. The generated code checks at import that the grpcio runtime is at
least the version that generated it; that version is written as the lower
bound pyproject.toml declares for grpcio, so that any patch release of
grpcio-tools the ``test`` extra resolves to generates the same files, and the
runtime check agrees with the declared dependency:

    python tools/gen_proto.py          # regenerate in place
    python tools/gen_proto.py --check  # exit 1 if the committed code is stale
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import tomllib
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "engine" / "api"  # the proto import root: files are chartd/v1/NAME.proto
PACKAGE = "chartd/v1"
TARGET_PACKAGE = "engine.api.chartd.v1"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
_IMPORTS = re.compile(r"^(from|import) chartd\.v1\b", re.MULTILINE)
_GRPC_VERSION = re.compile(r"^GRPC_GENERATED_VERSION = '[^']*'$", re.MULTILINE)


def grpc_floor() -> str:
    """The least grpcio version pyproject.toml declares (``grpcio>=X``)."""
    with (REPO / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    for dep in dependencies:
        found = re.fullmatch(r"grpcio\s*>=\s*([0-9][0-9.]*)", dep.strip())
        if found:
            return found.group(1)
    sys.exit("pyproject.toml declares no 'grpcio>=X' dependency")


def _plugin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        sys.exit(f"{name} not found: pip install -e '.[test]' (it brings mypy-protobuf)")
    return found


def generate(out: Path) -> list[Path]:
    """Run protoc on every .proto into ``out``; the generated files, imports rewritten."""
    try:
        from grpc_tools import protoc  # noqa: PLC0415 - a tool dependency, not a runtime one
    except ImportError:
        sys.exit("grpcio-tools is not installed: pip install -e '.[test]'")
    protos = sorted((ROOT / PACKAGE).glob("*.proto"))
    if not protos:
        sys.exit(f"no .proto files under {ROOT / PACKAGE}")
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *(str(p.relative_to(ROOT)) for p in protos),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    written = sorted(p for p in (out / PACKAGE).iterdir() if p.name.endswith(SUFFIXES))
    floor = grpc_floor()
    for path in written:
        text = _IMPORTS.sub(rf"\1 {TARGET_PACKAGE}", path.read_text(encoding="utf-8"))
        text = _GRPC_VERSION.sub(f"GRPC_GENERATED_VERSION = '{floor}'", text)
        path.write_text(text, encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    """Regenerate the API code, or with ``--check`` compare it with what is committed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args(argv)
    dest = ROOT / PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text(encoding="utf-8") for p in generate(Path(tmp))}
    current = {
        p.name: p.read_text(encoding="utf-8") for p in dest.iterdir() if p.name.endswith(SUFFIXES)
    }
    stale = sorted(n for n in fresh.keys() | current.keys() if fresh.get(n) != current.get(n))
    if args.check:
        for name in stale:
            print(f"stale: {dest.relative_to(REPO) / name}", file=sys.stderr)
        if stale:
            print("run: python tools/gen_proto.py", file=sys.stderr)
        return 1 if stale else 0
    for name in current.keys() - fresh.keys():
        (dest / name).unlink()
    for name, text in fresh.items():
        (dest / name).write_text(text, encoding="utf-8")
    print(f"generated {len(fresh)} files in {dest.relative_to(REPO)} ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
