"""The committed API code is exactly what tools/gen_proto.py generates from the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_generated_code_is_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_generated_runtime_check_asks_for_the_declared_grpcio() -> None:
    # The generated stubs refuse a grpcio older than GRPC_GENERATED_VERSION at import:
    # it must be the floor pyproject.toml declares, whatever patch release of
    # grpcio-tools generated them (a newer one names itself).
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import gen_proto  # noqa: PLC0415

        floor = gen_proto.grpc_floor()
    finally:
        sys.path.remove(str(REPO / "tools"))
    for name in ("engine_pb2_grpc.py", "containers_pb2_grpc.py"):
        text = (REPO / "engine" / "api" / "chartd" / "v1" / name).read_text()
        assert f"GRPC_GENERATED_VERSION = '{floor}'" in text, name
