"""tools/crash_harness.py: SIGKILL the engine at every crash point, and nothing is lost.

The harness runs as a separate process, as it would by hand. ``--quick``
keeps every crash point (it fails sagas at their last step only, so that
every compensation runs); a few random-time kills come on top. The negative
tests show that the harness is not blind: an undo that forgets its resource
is reported as a leak, with a non-zero exit.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "crash_harness.py"
SUMMARY = re.compile(
    r"^crashes: (\d+), recovered: (\d+), leaked: (\d+), lost: (\d+), duplicated: (\d+)$"
)
START = ("make_dir", "write_file", "spawn", "register")
STOP = ("unregister", "halt", "remove_file", "remove_dir")


def harness(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def report(*args: str) -> dict[str, Any]:
    done = harness(*args, "--json")
    assert done.stdout, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["returncode"] = done.returncode
    return result


def summary(line: str) -> dict[str, int]:
    match = SUMMARY.match(line)
    assert match, f"not a summary line: {line!r}"
    keys = ("crashes", "recovered", "leaked", "lost", "duplicated")
    return dict(zip(keys, map(int, match.groups()), strict=True))


def expected_points() -> set[str]:
    """Every crash point the issue asks for, written out independently of the harness."""
    points = set()
    for event, steps in (("start", START), ("stop", STOP)):
        points |= {f"{event}:writeahead:{w}" for w in ("before", "after")}
        points |= {f"{event}:commit:{w}" for w in ("before", "flushed", "after")}
        points |= {f"{event}:ack:after", f"{event}:failack:after"}
        points |= {f"{event}:failcommit:{w}" for w in ("before", "after")}
        for step in steps:
            points |= {f"{event}:do:{step}:{w}" for w in ("before", "inside", "after")}
        for step in steps[:-1]:  # the failing (last) step itself is never undone in the saga
            points |= {f"{event}:undo:{step}:{w}" for w in ("before", "inside", "after")}
        for step in steps:  # ... but recovery undoes every step, and is killed inside each
            points.add(f"-> recovery {event}:undo:{step}:inside")
        points.add(f"-> recovery {event}:failcommit:before")
    return points | {"start:do:spawn:spawned", "stop:undo:halt:spawned"}


def check_clean(result: dict[str, Any]) -> None:
    failures = [c for c in result["cases"] if not c["ok"]]
    assert not failures, json.dumps(failures, indent=2)
    assert not result["missed"], result["missed"]
    assert not result["errors"], result["errors"]
    assert not result["orphans"], result["orphans"]
    counts = summary(result["summary"])
    assert counts["crashes"] == counts["recovered"] == result["crashes"] > 0
    assert counts["leaked"] == counts["lost"] == counts["duplicated"] == 0
    assert result["ok"] is True
    assert result["returncode"] == 0


def test_every_crash_point_is_recovered_on_sqlite() -> None:
    result = report("--quick", "--random", "4", "--seed", "7")
    check_clean(result)
    labels = [c["label"] for c in result["cases"]]
    for point in expected_points():
        assert any(point in label.split(" [")[0] for label in labels), f"{point} not covered"
    # each journal outcome a crash can lead to was seen at least once
    journals = {c["journal"] for c in result["cases"]}
    assert {"absent", "interrupted", "completed", "committed", "failed"} <= journals
    assert sum(c["kills"] for c in result["cases"] if c["label"].startswith("random")) == 4
    # a recovery case kills twice: the child, then the engine recovering after it
    assert result["crashes"] == len(labels) + sum(" -> recovery " in label for label in labels)


def test_crash_points_on_postgresql(pg_url: str) -> None:
    check_clean(report("--db", pg_url, "--quick", "--random", "2"))


def test_children_as_fresh_interpreters() -> None:
    result = report("--exec", "--only", "stop:commit:*", "--jobs", "1")
    check_clean(result)
    before, flushed, after = (c["journal"] for c in result["cases"])
    assert before in ("interrupted", "completed")  # completed if the flusher beat the commit
    assert (flushed, after) == ("completed", "committed")


def test_a_leaking_undo_is_caught() -> None:
    done = harness("--plant-leak", "--only", "start:do:spawn:inside*")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    counts = summary(lines[0])
    # recovery undoes write_file, whose planted undo leaves the file behind
    assert counts["leaked"] == counts["crashes"] == 1
    assert counts["recovered"] < counts["crashes"]
    assert counts["lost"] == counts["duplicated"] == 0
    assert "write_file" in done.stderr and "does not own it" in done.stderr


def test_no_crash_is_no_pass() -> None:
    done = harness("--only", "no such case")
    assert done.returncode == 1
    assert summary(done.stdout.strip().splitlines()[-1])["crashes"] == 0


def test_two_engines_recovering_at_once_apply_the_recovery_once() -> None:
    # A second engine lists the unfinished transitions, the first recovers them, then
    # the second goes on with its stale list (two replicas sweeping at the same moment).
    result = report("--race-recovery", "--only", "start:commit:*")
    check_clean(result)
