"""Fires/s of this tree's engine beside another tree's, runs interleaved, on one PostgreSQL.

``python tools/bench_postgres_compare.py OTHER_TREE [--rounds N] [--seconds S]``

OTHER_TREE is a chartd source tree (``git archive BASE | tar -x -C DIR``).
On a machine shared with other work a whole ``bench_postgres.py`` run of one
tree and then of the other measures two different moments: here every
configuration (1 process on disjoint entities, 4 on disjoint ones, 4 on the
hot set) runs once per tree in turn, round after round, beside the floor,
and the medians are printed as JSON. Each run is ``bench_postgres._run`` of
that tree, in a fresh interpreter whose ``engine`` is that tree's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
RUN = (
    "import sys; tree = sys.argv[1]; sys.path[:0] = [tree, tree + '/tools']; "
    "import bench_postgres as b; url = b._bench_database(b.DEFAULT_URL); "
    "print(b._run(sys.argv[2], url, int(sys.argv[3]), sys.argv[4] == 'hot', float(sys.argv[5])))"
)
SHAPES = ((1, "disjoint"), (4, "disjoint"), (4, "hot"))


def _run(tree: Path, kind: str, procs: int, where: str, seconds: float) -> float:
    args = [sys.executable, "-c", RUN, str(tree), kind, str(procs), where, str(seconds)]
    done = subprocess.run(args, cwd=tree, capture_output=True, text=True, check=True)
    return round(float(done.stdout.split()[-1]), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("other", type=Path, help="the other chartd source tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    trees = {"other": args.other.resolve(), "this": HERE}
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for procs, where in SHAPES:
            key = f"{where} x{procs}"
            runs.setdefault(f"floor {key}", []).append(
                _run(HERE, "floor", procs, where, args.seconds)
            )
            for name, tree in trees.items():
                runs.setdefault(f"engine {name} {key}", []).append(
                    _run(tree, "engine", procs, where, args.seconds)
                )
    report = {key: {"runs": r, "median": statistics.median(r)} for key, r in runs.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
