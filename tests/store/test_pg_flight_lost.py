"""A fire whose commit went out in one flight, and whose answer was lost, applies once.

On PostgreSQL a fire's batch goes to the server in one flight, its COMMIT
included (engine.store.flight): a connection lost after the flight went out
leaves the client not knowing whether it committed. Here a TCP relay
between the engine and the server forwards the flight, lets the server
commit it, and then drops the answer and both connections: the engine must
find the commit and report the fire, not apply it again. (A flight lost
before it committed, its backend terminated while it waited for a lock, is
test_pg_connections_dropped's.)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import sqlalchemy as sa

import engine

CHART = """
chart: acct
initial: idle
states: {idle: {}}
transitions:
  - {event: bump, from: idle, to: idle}
"""


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
        while data := _recv(client):
            if self._marker is not None and self._marker in data:
                self._marker = None
                cut.set()  # armed before the server can answer
            server.sendall(data)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        while data := _recv(server):
            if cut.is_set():
                # The answer comes once the server has run the whole flight, COMMIT
                # included: it is committed, and the client never hears so.
                self.cuts += 1
                break
            client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self._listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


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
            relay.cut_answer_to(b"bump")
            result = eng.fire("a", "bump")
            assert relay.cuts == 1
            assert result.entity.version == row.version + 1
            history = [tr.version_from for tr in eng.history("a")]
            events = [e.seq for e in eng.watch(0, timeout=0, poll=0.01)]
            version = eng.get("a").version
    finally:
        relay.close()
    assert history == [row.version]
    assert events == [1, 2]  # the creation's event and the fire's: no hole, no repeat
    assert version == row.version + 1
