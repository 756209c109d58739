"""Claims on due timers (``Store.claim_timers``): of several engines, one fires each timer.

On every backend: a claimed timer is not claimed again until its claim lapses
or is released, a commit that writes the timer ends its claim, and
``next_timer(now=...)`` does not wake an engine for another's claimed timer.
On PostgreSQL, claims from many connections at once never share a timer.
"""

from __future__ import annotations

import threading

from test_store_conformance import create, entity, timer

from engine.ports import Write
from engine.store import SqlStore, open_store


def test_a_claimed_timer_is_not_claimed_again_until_its_claim_ends(store: SqlStore) -> None:
    create(store, entity("e1"))
    store.apply([Write(timers=[timer("t1", "e1", 10.0), timer("t2", "e1", 50.0)])])

    [claimed] = store.claim_timers("a", now=20.0, until=30.0)
    assert claimed.id == "t1"
    assert store.claim_timers("b", now=25.0, until=35.0) == []
    assert store.next_timer(now=25.0) == 50.0  # t1 is a's: nothing to wake b for before t2
    assert store.next_timer() == 10.0

    [again] = store.claim_timers("b", now=31.0, until=40.0)  # a's claim lapsed: a died
    assert again.id == "t1"
    store.release_timers("a", ["t1"])  # not a's any more: b's claim stands
    assert store.claim_timers("c", now=32.0, until=40.0) == []
    store.release_timers("b", ["t1"])
    assert [tm.id for tm in store.claim_timers("c", now=32.0, until=40.0)] == ["t1"]

    store.apply([Write(timers=[timer("t1", "e1", 10.0, status="fired")])])
    assert store.claim_timers("d", now=100.0, until=200.0) == [timer("t2", "e1", 50.0)]


def test_claims_from_many_connections_at_once_never_share_a_timer(pg_url: str) -> None:
    setup = open_store(pg_url)
    try:
        create(setup, *(entity(f"e{i}") for i in range(20)))
        setup.apply(
            [Write(timers=[timer(f"t{i}-{j}", f"e{i}", 1.0) for j in range(10)]) for i in range(20)]
        )
    finally:
        setup.close()
    got: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def claim(owner: str) -> None:
        store = open_store(pg_url)
        try:
            start.wait()
            mine: list[str] = []
            while batch := store.claim_timers(owner, now=2.0, until=100.0, limit=7):
                mine.extend(tm.id for tm in batch)
            got[owner] = mine
        finally:
            store.close()

    threads = [threading.Thread(target=claim, args=(f"o{n}",)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    every = [tid for ids in got.values() for tid in ids]
    assert sorted(every) == sorted({f"t{i}-{j}" for i in range(20) for j in range(10)})
    assert len(every) == len(set(every))
