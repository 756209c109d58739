"""Fires on PostgreSQL survive connections the server drops, each applied exactly once.

The store does not ping a pooled connection before using it (a round trip
per checkout, two per fire): it looks whether the server has closed it, and
runs a write again on a new connection when the old one was lost before its
COMMIT was sent, when nothing of it can have committed. A fire's write goes
in one flight, its COMMIT included (engine.store.flight): lost with its
connection, it is settled on a new one, by whether its journal entry is
there once its entities' locks are held. Here a backend is terminated while
its fire's flight waits for a lock (not committed: applied on a new
connection), and a TCP relay between the engine and the server lets the
server commit a fire's flight and then drops the answer and both
connections (committed: reported, not applied again).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa

import engine

# The relay cuts the answer to the first message holding the event's name: a word
# that no statement of the store holds (a flight of the outbox's sequencer, prepared
# on a new connection, held "bump" and took the cut meant for the fire).
CHART = """
chart: acct
initial: idle
states: {idle: {}}
transitions:
  - {event: tally, from: idle, to: idle}
"""


def journal_and_outbox(eng: engine.Engine, name: str) -> tuple[list[int], list[int], int]:
    """The entity's journal (versions from), the outbox's seqs, and its version."""
    history = [tr.version_from for tr in eng.history(name)]
    events = [e.seq for e in eng.watch(0, timeout=0, poll=0.01)]
    return history, events, eng.get(name).version


class Relay:
    """Forwards TCP connections to a server; cuts one answer when told to."""

    def __init__(self, host: str, port: int) -> None:
        self._to = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._armed: threading.Event | None = None
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_answer_to(self, marker: bytes) -> None:
        """Drop the server's answer to the next message holding ``marker``, and the link."""
        self._marker = marker

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._to)
            cut = threading.Event()
            threading.Thread(target=self._up, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, cut), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        tail = b""  # a marker may straddle two reads
        while data := _recv(client):
            marker = self._marker
            if marker is not None and marker in tail + data:
                self._marker = None
                cut.set()  # armed before the server can answer
            tail = data[-32:]
            if not _send(server, data):
                break
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        while data := _recv(server):
            if cut.is_set():
                # The answer comes once the server has run the whole flight, COMMIT
                # included: it is committed, and the client never hears so.
                self.cuts += 1
                break
            if not _send(client, data):
                break
        _close(client, server)

    def close(self) -> None:
        self._listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    """Whether ``data`` went out (the other direction may have closed both sockets)."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def test_fires_after_every_connection_was_terminated_commit_once(
    pg_server: Any, pg_url: str
) -> None:
    with engine.Engine.open(pg_url, timers=False) as eng:
        eng.register(engine.parse_chart(CHART))
        created = eng.create("acct", "a").version
        for _ in range(5):
            # Terminated, not waited for: the backend may still be going as the fire
            # checks its connection out, and fail the fire's first statement.
            assert pg_server.terminate() >= 1
            eng.fire("a", "tally")
        history, events, version = journal_and_outbox(eng, "a")
    assert history == [created + i for i in range(5)]
    assert events == list(range(1, 7))  # the creation's event and one per fire
    assert version == created + 5


def test_a_fire_whose_connection_is_terminated_before_its_commit_commits_once(
    pg_server: Any, pg_url: str, lock_waiter: Callable[..., int]
) -> None:
    conninfo = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with engine.Engine.open(pg_url, timers=False) as eng:
        eng.register(engine.parse_chart(CHART))
        row = eng.create("acct", "a")
        outcome: dict[str, Any] = {}

        def fire() -> None:
            try:
                outcome["result"] = eng.fire("a", "tally")
            except Exception as exc:
                outcome["error"] = exc

        # The entity's row locked elsewhere: the fire's first statement waits, its
        # backend is terminated there, and the fire goes on on a new connection.
        with psycopg.connect(conninfo) as locker:
            locker.execute("SELECT 1 FROM entities WHERE id = %s FOR UPDATE", (row.id,))
            writer = threading.Thread(target=fire)
            writer.start()
            first = lock_waiter()
            pg_server.admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            assert lock_waiter(other_than=first) != first
            locker.rollback()
            writer.join(timeout=60)
            assert not writer.is_alive()
        assert "error" not in outcome, outcome
        assert outcome["result"].entity.version == row.version + 1
        history, events, version = journal_and_outbox(eng, "a")
    assert history == [row.version]
    assert events == [1, 2]
    assert version == row.version + 1


def test_a_fire_whose_committed_flight_lost_its_answer_is_reported_once(
    pg_server: Any, pg_url: str
) -> None:
    url = sa.make_url(pg_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    try:
        with engine.Engine.open(relayed, timers=False) as eng:
            eng.register(engine.parse_chart(CHART))
            row = eng.create("acct", "a")
            relay.cut_answer_to(b"tally")
            result = eng.fire("a", "tally")
            assert relay.cuts == 1
            assert result.entity.version == row.version + 1
            history, events, version = journal_and_outbox(eng, "a")
    finally:
        relay.close()
    assert history == [row.version]
    assert events == [1, 2]  # the creation's event and the fire's: no hole, no repeat
    assert version == row.version + 1
