"""Daemon shutdown and restore, as moby does them without live-restore (issue 4).

A clean shutdown stops every running container with its own stop signal and
timeout, and that is not a manual stop. The next daemon (a new engine on the
same SQLite file, a new ProcessRuntime on the same state) applies the
restart policies as moby's restore does: ``always`` and ``unless-stopped``
containers that were running start again, a manual stop keeps an
``unless-stopped`` one down but not an ``always`` one, an ``on-failure:N``
one starts only if it has restarts left, a container never started stays
created. A daemon that crashes (``os._exit`` in a subprocess)
leaves its containers' processes running: the next one kills them, marks the
containers exited and then applies the policies.
"""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from container_daemon import Daemon, Strays, alive, eventually, run_crashing

FOREVER = ["sleep", "1000"]
# Exits 1 the first time it runs, then runs for good (so a restart is visible).
ONCE = 'if [ -e "$0.ran" ]; then exec sleep 1000; fi; touch "$0.ran"; exit 1'


def test_shutdown_stops_with_each_stop_signal_and_timeout_and_is_no_manual_stop(
    open_daemon: Callable[..., Daemon],
) -> None:
    daemon = open_daemon()
    svc = daemon.containers
    trap = 'trap "exit 7" USR1; while :; do sleep 0.1; done'
    deaf = 'trap "" TERM; while :; do sleep 0.1; done'  # its children ignore TERM too
    ids = {
        "usr1": svc.create(["sh", "-c", trap], name="usr1", stop_signal="SIGUSR1").id,
        "deaf": svc.create(["sh", "-c", deaf], name="deaf", stop_timeout=1).id,
        "always": svc.create(FOREVER, name="always", restart="always").id,
        "paused": svc.create(FOREVER, name="paused").id,
        "created": svc.create(FOREVER, name="created", restart="always").id,
    }
    pids = {}
    for name in ("usr1", "deaf", "always", "paused"):
        pids[name] = svc.start(name).data["pid"]
    svc.pause("paused")
    since = daemon.engine.sequence()

    daemon.shutdown()

    assert not any(alive(pid) for pid in pids.values())
    after = open_daemon()  # the next daemon reads what the first committed
    got = {name: after.entity(cid) for name, cid in ids.items()}
    assert {name: (e.state, e.data["exit_code"]) for name, e in got.items()} == {
        "usr1": ("exited", 7),
        "deaf": ("exited", 137),  # SIGKILL when its stop timeout elapsed
        "always": ("exited", 143),  # not restarted: a stop cancels the policy
        "paused": ("exited", 143),  # thawed after the signal
        "created": ("created", 0),
    }
    assert not any(e.data.get("manually_stopped") for e in got.values())
    assert after.events(since, ids["usr1"]) == ["kill:10", "die:7", "stop"]
    assert after.events(since, ids["deaf"]) == ["kill:15", "kill:9", "die:137", "stop"]
    assert after.events(since, ids["paused"]) == ["kill:15", "unpause", "die:143", "stop"]

    assert after.containers.restore() == [ids["always"]]
    restarted = after.settled(ids["always"], "running")
    assert restarted.data["pid"] != pids["always"]
    assert after.containers.inspect("always")["RestartCount"] == 0
    assert after.entity(ids["created"]).state == "created"


def test_restore_applies_each_policy_as_moby_does(
    open_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = open_daemon()
    daemon.clock.hold()  # the restarting one waits for its retry until the shutdown
    svc = daemon.containers
    once = tmp_path / "once"
    ids = {}
    for name, policy, cmd in [
        ("always", "always", FOREVER),
        ("unless-stopped", "unless-stopped", FOREVER),
        ("on-failure", "on-failure", FOREVER),  # stopped by the shutdown: 143, a failure
        ("no", "no", FOREVER),
        ("always-stopped", "always", FOREVER),
        ("unless-stopped-stopped", "unless-stopped", FOREVER),
        ("restarting", "always", ["sh", "-c", ONCE, str(once)]),
        ("never-started", "always", FOREVER),
    ]:
        ids[name] = svc.create(cmd, name=name, restart=policy).id
        if name != "never-started":
            svc.start(name)
    svc.stop("always-stopped")
    svc.stop("unless-stopped-stopped")
    daemon.settled(ids["restarting"], "restarting")

    daemon.shutdown()
    restored = open_daemon()
    started = restored.containers.restore()

    expected = {"always", "unless-stopped", "on-failure", "always-stopped", "restarting"}
    assert sorted(started) == sorted(ids[name] for name in expected)
    status = {name: restored.containers.inspect(name)["State"]["Status"] for name in ids}
    assert status == {
        name: "running" if name in expected else "created" if name == "never-started" else "exited"
        for name in ids
    }
    manual = {name: restored.entity(cid).data.get("manually_stopped") for name, cid in ids.items()}
    assert manual["unless-stopped-stopped"] is True  # why it stays down
    assert all(restored.containers.inspect(n)["RestartCount"] == 0 for n in expected)


def test_restore_restarts_an_on_failure_n_container_only_if_restarts_are_left(
    open_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = open_daemon()
    daemon.clock.hold()  # each retry waits for the test to move the clock
    svc = daemon.containers
    once = tmp_path / "once"
    # spent: failed, restarted once, failed again: its one restart is used up.
    # left: failed, restarted once, then ran until the shutdown stopped it (143, a failure).
    spent = svc.create(["sh", "-c", "exit 1"], name="spent", restart="on-failure:1").id
    left = svc.create(["sh", "-c", ONCE, str(once)], name="left", restart="on-failure:2").id
    for cid in (spent, left):
        svc.start(cid)
        waiting = daemon.settled(cid, "restarting")
        daemon.clock.advance(1.0)  # past the first backoff (0.1 s)
        daemon.engine.run_due_timers()
        daemon.until(cid, lambda e, v=waiting.version: e.version > v, "the retry")
    daemon.settled(spent, "exited")
    daemon.settled(left, "running")
    assert [svc.inspect(c)["RestartCount"] for c in (spent, left)] == [1, 1]

    daemon.shutdown()
    restored = open_daemon()

    assert restored.containers.restore() == [left]
    assert restored.containers.inspect("spent")["State"]["Status"] == "exited"
    assert restored.containers.inspect("left")["State"]["Status"] == "running"


# -- a daemon that crashed ---------------------------------------------------------------------

CRASHING_DAEMON = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from container_daemon import Daemon, run_crashing

    base = Path(sys.argv[1])
    daemon = Daemon(base)
    svc = daemon.containers
    group = ["sh", "-c", 'sleep 1000 & echo $! > "$0"; wait', str(base / "child")]
    for name, cmd, kw in [
        ("keeper", group, {"restart": "always"}),
        ("unless", ["sleep", "1000"], {"restart": "unless-stopped"}),
        ("plain", ["sleep", "1000"], {}),
        ("gone", ["sleep", "1000"], {}),
        ("rm", ["sleep", "1000"], {"auto_remove": True}),
    ]:
        svc.create(cmd, name=name, **kw)
        svc.start(name)
    child = base / "child"
    while not child.exists() or not child.read_text().strip():
        pass
    pids = {e.data["name"].lstrip("/"): e.data["pid"] for e in svc.list()}
    pids["child"] = int(child.read_text())
    print(json.dumps({"pids": pids, "ids": {e.data["name"].lstrip("/"): e.id for e in svc.list()}}))
    sys.stdout.flush()
    os._exit(0)  # a crash: nothing stopped, closed or flushed
    """
)


def test_a_restored_daemon_kills_what_a_crashed_one_left_and_reconciles(
    open_daemon: Callable[..., Daemon], tmp_path: Path, strays: Strays
) -> None:
    left = run_crashing(CRASHING_DAEMON, tmp_path)
    pids: dict[str, int] = left["pids"]
    ids: dict[str, str] = left["ids"]
    strays.add(*pids.values())
    assert all(alive(pid) for pid in pids.values())
    os.kill(pids["gone"], signal.SIGKILL)  # dies while no daemon runs
    eventually(lambda: not alive(pids["gone"]), "gone is gone")

    daemon = open_daemon()
    started = daemon.containers.restore()

    eventually(lambda: not any(alive(pid) for pid in pids.values()), "every process killed")
    assert sorted(started) == sorted([ids["keeper"], ids["unless"]])
    svc = daemon.containers
    for name in ("keeper", "unless"):
        again = daemon.settled(ids[name], "running")
        assert again.data["pid"] != pids[name] and alive(again.data["pid"])
        assert svc.inspect(name)["RestartCount"] == 0  # started by restore, manager reset
        journal = [(t.event, t.params.get("restored")) for t in daemon.engine.history(ids[name])]
        assert journal[-2:] == [("exit", True), ("start", None)]  # exited first, then policy
    assert (svc.inspect("plain")["State"]["Status"], svc.inspect("plain")["State"]["ExitCode"]) == (
        "exited",
        137,
    )
    gone = svc.inspect("gone")["State"]  # its status went to another reaper: unknown
    assert (gone["Status"], gone["ExitCode"]) == ("exited", 255)
    daemon.settled(ids["rm"], "removed")  # --rm: removed once it is found exited
    for name in ("plain", "gone"):
        assert daemon.leftovers(ids[name]) == []
    assert sorted(daemon.pool.leases().values()) == sorted([ids["keeper"], ids["unless"]])
    assert {t.container_id for t in daemon.process.tasks()} == {ids["keeper"], ids["unless"]}


def test_restore_gives_back_the_leases_a_power_loss_brought_back(
    open_daemon: Callable[..., Daemon],
) -> None:
    daemon = open_daemon()
    svc = daemon.containers
    stopped = svc.create(FOREVER, name="stopped").id
    removed = svc.create(FOREVER, name="removed").id
    always = svc.create(FOREVER, name="always", restart="always").id
    for name in ("stopped", "removed", "always"):
        svc.start(name)
    svc.stop("stopped")
    svc.remove("removed", force=True)
    # Leases are not fsynced: a power loss may undo their releases.
    (daemon.pool.lease_dir / "10.88.0.200").write_text(stopped)
    (daemon.pool.lease_dir / "10.88.0.201").write_text(removed)
    daemon.shutdown()

    after = open_daemon()
    assert after.containers.restore() == [always]
    after.settled(always, "running")
    assert list(after.pool.leases().values()) == [always]  # leased again by its restart
    assert after.leftovers(stopped) == []


# A daemon that crashes inside a stop or an exit, after what the step did and before the
# transition's one commit (neither writes ahead: their steps have nothing to undo).
CRASHING_INSIDE = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from container_daemon import Daemon, run_crashing

    base, during = Path(sys.argv[1]), sys.argv[3]
    daemon = Daemon(base)
    svc, runtime = daemon.containers, daemon.runtime
    cid = svc.create(["sleep", "1000"], name="box").id
    pid = svc.start("box").data["pid"]
    print(json.dumps({"id": cid, "pid": pid}))
    sys.stdout.flush()
    method = {"stop": "kill", "exit": "delete"}[during]
    original = getattr(runtime, method)

    def crash(*args):
        original(*args)
        os._exit(0)  # a crash: the step took effect, its transition is not committed

    setattr(runtime, method, crash)
    if during == "stop":
        svc.stop("box")
    else:
        daemon.process.kill(cid, 9)  # the exit the runtime sees; its fire crashes
        time.sleep(60)
    os._exit(3)  # never reached
    """
)


@pytest.mark.parametrize("during", ["stop", "exit"])
def test_a_daemon_that_crashed_inside_a_stop_or_an_exit_loses_and_leaks_nothing(
    open_daemon: Callable[..., Daemon], tmp_path: Path, strays: Strays, during: str
) -> None:
    left = run_crashing(CRASHING_INSIDE, tmp_path, during)
    cid, pid = left["id"], left["pid"]
    strays.add(pid)

    daemon = open_daemon()
    assert daemon.containers.restore() == []

    eventually(lambda: not alive(pid), "its process is gone")
    box = daemon.entity(cid)
    assert box.state == "exited" and box.data["pid"] == 0
    journal = [(t.event, t.status, t.params.get("restored")) for t in daemon.engine.history(cid)]
    # The stop was never recorded (its signal was sent: the process is gone either way); the
    # exit is recorded once, by the restore.
    assert journal == [("start", "committed", None), ("exit", "committed", True)]
    if during == "exit":
        # Its status went with the task the crashed exit deleted: unknown, as for a process
        # that ended while no daemon ran.
        assert box.data["exit_code"] == 255
    assert daemon.engine.store.unfinished() == []
    assert daemon.leftovers(cid) == []
    assert daemon.process.tasks() == []
    # And it works on.
    assert daemon.containers.start("box").in_state("running")
    assert not daemon.containers.stop("box").in_state("running")
