"""Crash harness: SIGKILL the engine everywhere a saga can be, then check what recovery left.

What runs
---------
A chart, ``crashbox``, whose saga steps create real resources under a
resource root (a temporary directory)::

    idle --start--> running     via starting: make_dir, write_file, spawn, register
    running --stop--> idle      via stopping: unregister, halt, remove_file, remove_dir

``make_dir`` creates the directory ``<identity>.d``, ``write_file`` the file
``<identity>.file``, ``spawn`` starts ``sleep 1000`` in its own process group
and writes its pid to ``<identity>.pid``, ``register`` writes the marker
``<identity>.marker``; ``<identity>`` is ``ctx.identity()`` (entity and
transition), so every undo finds what its step made without a payload (the
undo contract of :mod:`engine.runtime.bindings`). Every spawned process
carries ``CHARTD_CRASH_RESOURCE=<run>:<identity>`` in its environment: an undo
kills the group named by the pidfile *and* any process with its tag, so a
crash between starting the process and writing the pidfile leaks nothing
(and a lock held across ``posix_spawn`` makes an undo wait for a child whose
spawner died before the child could exec: see :meth:`Resources.spawning`).
Each undo is safe on a step that never ran. The ``start`` steps record their
identities in the entity's data; the ``stop`` steps remove those resources,
and their undos put them back (the process is started again), so a
compensated ``stop`` leaves the entity ``running`` with everything it owns.
``fail_at=<step>`` in the event's params makes that step raise before it
does anything, so that the saga compensates.

How it crashes
--------------
For every crash *case* the parent creates an entity (and, for ``stop``
cases, starts it), then runs a child, ``python tools/crash_harness.py
--child SPEC``, that opens the engine on the same database and fires one
event with an idempotency key. The child SIGKILLs itself
(``os.kill(os.getpid(), SIGKILL)``) at the case's crash point:

* ``E:writeahead:before|after`` around the commit that journals the
  transition as ``running`` (a wrapper of the store sees the unit);
* ``E:do:S:before|inside|after`` for every step ``S``: before it acts,
  after its resource exists but before ``do`` returns (``spawned``: the
  process runs but its pidfile is not written), after ``do`` returned
  (the engine's observer hook, before the step's end is journaled);
* ``E:commit:before|flushed|after`` around the final commit (``flushed``:
  every step's end made durable first, as the engine's background flusher
  may do, so that recovery finds every step done and finishes the
  transition), and ``E:ack:after``: the fire returned and the client
  recorded its result;
* in a saga that fails (``fail_at`` the last step, or every step without
  ``--quick``): ``E:undo:S:before|inside|after`` for every compensation,
  ``E:failcommit:before|after`` around the commit of the failure, and
  ``E:failack:after``;
* recovery cases: the child is killed inside the last step, then a second
  child, which only opens the engine and registers the chart (so it
  recovers), is killed inside each undo of that recovery and before its
  commit.

``--random N`` adds N cases where the child fires ``start``/``stop`` in a loop
(a third of them with a failing step, chosen by a seeded generator) and the
parent SIGKILLs it after a random delay (seeded by ``--seed``).

What is verified
----------------
After each case the parent opens the engine itself; ``register`` recovers
the transitions the dead child left. Then, for the case's entity:

* **journal** -- no transition is left ``running`` or ``compensating``;
  the version chain is unbroken (each transition starts from the version
  the previous one ended at, the entity is at the last one's); the fire's
  transition says what happened, and it is what the crash point allows:
  absent (killed before the write-ahead), ``interrupted`` (status
  ``failed``, category ``unavailable``, the "was interrupted" message,
  ``plan.recovered_by`` set, every step compensated), ``completed`` by
  recovery (``committed`` with ``plan.recovered_by``, every step done),
  ``committed`` or ``failed`` by the child itself (the failure names the
  injected error, the failed step ``failed``, the others ``compensated``),
  or ``resumed``: a failed saga whose undo the crash interrupted, finished
  by recovery (``failed`` with the injected error and its category, every
  step undone).
* **leaked** -- resources of the entity (paths under the root, live tagged
  processes) that its committed state does not own. A ``running`` entity
  owns exactly the four resources of its last committed ``start``
  (and its data must name them); an ``idle`` one owns none. Resources
  that belong to no entity of the run are counted at the end.
* **lost** -- a fire the child acknowledged (it appends the result to an
  ack file after ``fire`` returns) whose transition the journal does not
  hold with that outcome; a resource the entity owns that is missing (or a
  pidfile whose process is dead); a version bump with no transition.
* **duplicated** -- an idempotency key journaled twice; a transition that
  starts from a version an earlier one already moved past, or that spans
  more versions than its write-ahead and its end (recovery may add one to
  claim it); more than one ``transition``/``transition.failed`` outbox event
  for one transition (none is *lost*); two live processes for one
  resource. The parent then retries the fire with the
  same key, as a client that never heard back would: a key the journal
  holds must replay (same transition, or the recorded error) and add
  nothing; an absent one runs once.
* the entity must still work: the parent stops it (or starts and stops
  it) and checks that nothing of it is left.

``crashes`` counts the SIGKILLs delivered (a recovery case delivers two).
``recovered`` counts those whose case ended with every check above passing:
either recovery found the unfinished transition and finished or undid it,
or (killed before the write-ahead or after the final commit) there was
nothing to fix and the state was already consistent. The harness prints
``crashes: N, recovered: N, leaked: 0, lost: 0, duplicated: 0`` and exits 0
only if recovered == crashes, leaked == lost == duplicated == 0, and every
crash point was reached. ``--plant-leak`` makes the undo of ``write_file`` do
nothing, to show that the harness catches a leak.

``--race-recovery`` recovers each crash with two engines: the second lists
the unfinished transitions, the first recovers them, then the second goes on
with its stale list, as two replicas sweeping at the same moment would.
Recovery must still happen exactly once.

Cases run ``--jobs`` at a time; each worker uses its own chart name
(``crashbox0``, ``crashbox1``, ...) so that one worker's recovery never
touches another's transitions. Children are forked from a zygote per worker
that has imported the engine (``--exec`` starts each from a fresh
interpreter instead: same cases, four times slower).

The harness's parts live in the package ``tools/crash/`` (its docstring
lists them); this file is its command line, and what children run.

Usage: ``python tools/crash_harness.py [--db URL] [--quick] [--random N]
[--seed S] [--jobs J] [--only GLOB] [--exec] [--race-recovery] [--plant-leak]
[--list] [--keep] [--verbose] [--json]``.
The default database is a SQLite file in a temporary directory; a
``postgresql+psycopg://`` URL works too (the run's entity names are unique,
so a database can be reused).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

# Run as a script (by hand, and as every child), the repository is not on the path yet.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.crash.cases import Case, cases  # noqa: E402
from tools.crash.child import child, zygote  # noqa: E402
from tools.crash.driver import Options, Tally, run_cases  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--db", help="database URL (default: a SQLite file in a temporary directory)")
    p.add_argument("--quick", action="store_true", help="fail sagas at their last step only")
    p.add_argument("--random", type=int, default=0, metavar="N", help="N random-time kills")
    p.add_argument("--seed", type=int, default=1, help="seed of the random kills")
    p.add_argument("--window", type=float, default=0.5, help="random kills within S seconds")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--only", metavar="GLOB", help="only the cases whose label matches")
    p.add_argument("--plant-leak", action="store_true", help="an undo that removes nothing")
    p.add_argument(
        "--race-recovery",
        action="store_true",
        help="recover each crash with two engines, the second with a stale list",
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--verbose", "-v", action="store_true", help="a line per case")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    p.add_argument(
        "--exec",
        action="store_true",
        help="start every child as a fresh interpreter (slower) instead of forking it",
    )
    p.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness; 0 only if every crash was recovered and nothing leaked, lost or doubled."""
    args = parse_args(argv)
    if args.child is not None:
        return child(json.loads(args.child))
    if args.zygote:
        return zygote()
    selected = _selected(args)
    if args.list:
        for c in selected:
            print(c.label)
        return 0
    # Recovery logs a warning per transition it finishes or undoes: expected here.
    logging.getLogger("chartd").addHandler(logging.NullHandler())
    logging.getLogger("chartd").propagate = False
    options = Options(
        db=args.db,
        jobs=args.jobs,
        fresh_interpreters=args.exec,
        keep=args.keep,
        plant_leak=args.plant_leak,
        window=args.window,
        race=args.race_recovery,
    )
    tally = run_cases(selected, options)
    if args.json:
        _print_json(tally)
    else:
        _print_lines(tally, verbose=args.verbose, jobs=args.jobs)
    return 0 if tally.ok else 1


def _selected(args: argparse.Namespace) -> list[Case]:
    """The cases the command line asks for: every crash point, the random kills, ``--only``."""
    selected = cases(quick=args.quick)
    rng = random.Random(args.seed)
    for i in range(args.random):
        seed = rng.randrange(2**32)
        selected.append(Case(f"random #{i} seed={seed}", "loop", None, random_seed=seed))
    if args.only:
        selected = [c for c in selected if fnmatch.fnmatch(c.label, args.only)]
    return selected


def _print_json(tally: Tally) -> None:
    """The whole report as one JSON object."""
    report = {
        "summary": tally.summary,
        "crashes": tally.crashes,
        "recovered": tally.recovered,
        "leaked": tally.leaked,
        "lost": tally.lost,
        "duplicated": tally.duplicated,
        "cases": [asdict(o) | {"ok": o.ok} for o in tally.outcomes],
        "orphans": tally.orphans.problems,
        "missed": tally.missed,
        "errors": tally.errors,
        "db": tally.db,
        "seconds": round(tally.seconds, 2),
        "ok": tally.ok,
    }
    print(json.dumps(report, indent=2))


def _print_lines(tally: Tally, *, verbose: bool, jobs: int) -> None:
    """The summary line; before it, what failed (on stderr) or, if ``verbose``, every case."""
    if verbose:
        print(f"# {tally.asked} cases on {tally.db}, {jobs} at a time, run {tally.run}")
        for o in tally.outcomes:
            print(o.line())
        for p in tally.orphans.problems:
            print(f"BAD {p}")
        print(f"# {tally.seconds:.1f}s")
    for label in tally.missed:
        print(f"crash point never reached: {label}", file=sys.stderr)
    for error in tally.errors:
        print(error, file=sys.stderr)
    if not verbose:
        for o in tally.outcomes:
            if not o.ok:
                print(o.line(), file=sys.stderr)
    print(tally.summary)


if __name__ == "__main__":
    sys.exit(main())
