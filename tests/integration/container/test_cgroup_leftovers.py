"""A daemon killed while it creates a task leaves no cgroup behind once the next one started.

The process runtime makes a task's cgroup, moves the blocked shim into it,
then records the task. A daemon killed between the two leaves a cgroup that
no record names; the next daemon rolls the start back (recovery), finds no
task to delete, and used to leave the empty cgroup for good, which also kept
the runtime's parent cgroup from being removed. A new runtime now removes
every cgroup of its state directory that no task owns.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from container_daemon import Daemon, run_crashing

# Killed (os._exit) when the task's record is about to be written: its cgroup exists.
KILLED_WHILE_CREATING_A_TASK = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from container_daemon import Daemon, run_crashing
    from statecharts.container import tasks

    daemon = Daemon(Path(sys.argv[1]))
    created = daemon.containers.create(["sleep", "1000"], name="web")
    parent = daemon.process._cgroup_parent
    print(json.dumps({"id": created.id, "parent": None if parent is None else str(parent)}))
    sys.stdout.flush()

    def killed(task):
        os._exit(0)

    tasks.Task.save = killed
    daemon.containers.start("web")
    """
)


def test_the_cgroup_of_a_task_being_created_is_removed_by_the_next_daemon(
    open_daemon: Callable[..., Daemon], tmp_path: Path, prerequisites: Any
) -> None:
    left = run_crashing(KILLED_WHILE_CREATING_A_TASK, tmp_path)
    if left["parent"] is None:
        prerequisites.missing("no writable cgroup v2 hierarchy: tasks get no cgroup")
    parent = Path(left["parent"])
    assert (parent / left["id"]).is_dir()  # what the killed daemon left

    daemon = open_daemon()
    daemon.containers.restore()
    assert daemon.entity(left["id"]).state == "created"  # the start was rolled back
    assert [p.name for p in parent.iterdir() if p.is_dir()] == []
    assert daemon.containers.start("web").in_state("running")  # and can run again
    assert [p.name for p in parent.iterdir() if p.is_dir()] == [left["id"]]
    daemon.containers.remove("web", force=True)
    daemon.close()
    assert not parent.exists()  # nothing left in it: the runtime's own cgroup goes too
