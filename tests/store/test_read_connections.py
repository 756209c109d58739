"""A SQLite file's read connections: kept between reads, never holding an old snapshot.

Reads on a SQLite file run on connections the store keeps itself (not in
SQLAlchemy's pool), each with a page cache that holds the upper levels of the
indexes at a million entities. Real stores on a real SQLite file, two of them
on one file as two processes would be.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.ports import EntityRow, EventRow, Write
from engine.store import SqlStore, open_store


def _row(name: str) -> EntityRow:
    return EntityRow(
        id=f"id-{name}",
        chart="c",
        name=name,
        configuration=("idle",),
        data={"name": name},
        history={},
        version=0,
        created_at=1.0,
        updated_at=1.0,
    )


def _create(store: SqlStore, name: str) -> None:
    event = EventRow(f"id-{name}", name, "c", "create", {}, None, 1.0)
    assert store.apply([Write(entity=_row(name), events=[event])]) == [None]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    writer, reader = open_store(url), open_store(url)
    yield writer, reader
    writer.close()
    reader.close()


def test_a_kept_reader_sees_every_later_commit(stores: tuple[SqlStore, SqlStore]) -> None:
    writer, reader = stores
    assert reader.entity("first") is None
    assert reader.transitions("id-first") == []  # a snapshot read, rolled back after
    for name in ("first", "second", "third"):
        _create(writer, name)  # another store's commit, after the readers went idle
        found = reader.entity(name)
        assert found is not None and found.data == {"name": name}
        assert [e.entity_name for e in reader.events()][-1] == name


def test_concurrent_reads_each_get_a_connection_and_agree(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    writer, reader = stores
    names = [f"n{i}" for i in range(40)]
    for name in names:
        _create(writer, name)
    seen: list[str] = []
    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def read(part: list[str]) -> None:
        try:
            start.wait(timeout=60)
            for _ in range(20):
                for name in part:
                    row = reader.entity(name)
                    assert row is not None and row.name == name
            seen.extend(part)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=read, args=(names[i::16],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == [] and sorted(seen) == sorted(names)
    _create(writer, "late")
    assert reader.entity("late") is not None


def test_a_kept_reader_has_a_larger_page_cache_than_the_default(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    writer, _ = stores
    with writer._db.querying() as conn:
        pages = conn.execute("PRAGMA cache_size").fetchone()[0]
    assert pages == -24 * 1024  # KiB, where SQLite's default is -2000
