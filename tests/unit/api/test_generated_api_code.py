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
