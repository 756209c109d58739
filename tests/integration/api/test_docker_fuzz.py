"""Hostile requests against a real daemon's Engine API socket, drawn and hand-written.

Hypothesis draws create bodies with every field of the wrong JSON type,
huge, nested, NaN and infinite, and query parameters of every endpoint
with garbage in them; the hand-written cases pin moby's answer (status and
message) for each kind of bad input, and the raw-socket cases send what no
HTTP client would (absurd Content-Length, bodies that never come, hijack
upgrades on endpoints that do not hijack). Whatever is sent:

* the answer is docker's ``{"message": ...}`` with moby's status for the
  error's category: 400, 404, 409 (or 304, 501), never a 500;
* a refused create leaves no container behind;
* the daemon answers ``/_ping`` at once afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from api_daemon import Daemon
from docker_side import http
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dockerapi.calls import MAX_BODY

JSON_TYPE = {"Content-Type": "application/json"}
EXAMPLES = max(10, settings.default.max_examples // 4)
REFUSALS = {304, 400, 404, 409, 501}
_fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TRICKS = [
    "", " ", "/", "..", "../../etc/passwd", "a/../b", "\x00", "a\x00b", "\n", "\u202e",
    "\ufeff", "é", "²", "%00", "%2e%2e", "-1", "0", "2147483648", "1e309", "nan", "{}",
    "[]", "null", "SIGFOO", "999", "KILL", "x" * 300, "x" * 5000,
]  # fmt: skip
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(TRICKS),
    st.sampled_from(["\ud800", "a\udc00b", "\udbff\udfff"]),  # halves and a whole pair
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
CREATE_KEYS = [
    "Cmd", "Entrypoint", "Env", "Labels", "Image", "WorkingDir", "StopSignal", "StopTimeout",
    "Healthcheck", "Tty", "OpenStdin", "HostConfig",
]  # fmt: skip
HOST_KEYS = ["RestartPolicy", "AutoRemove"]


@pytest.fixture(scope="module")
def h(daemon: Daemon) -> Iterator[httpx.Client]:
    with http(daemon) as client:
        yield client


def _docker_error(answer: httpx.Response) -> str:
    """The answer's message; it must be moby's shape and a refusal's status."""
    assert answer.status_code in REFUSALS, (answer.status_code, answer.text)
    if answer.status_code == 304:
        return ""
    document = answer.json()
    assert set(document) == {"message"} and isinstance(document["message"], str), answer.text
    assert document["message"], answer.text
    return str(document["message"])


def _alive(h: httpx.Client) -> None:
    assert h.get("/_ping", timeout=30).text == "OK"


def _ids(h: httpx.Client) -> set[str]:
    return {c["Id"] for c in h.get("/containers/json?all=1").json()}


def _remove(h: httpx.Client, before: set[str]) -> None:
    for made in _ids(h) - before:
        assert h.delete(f"/containers/{made}?force=1").status_code == 204


# -- drawn --------------------------------------------------------------------------------


@st.composite
def create_bodies(draw: st.DrawFn) -> bytes:
    """A create body: a valid command often, every other field anything at all."""
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["Cmd"] = ["true"]
    for key in draw(st.lists(st.sampled_from(CREATE_KEYS), max_size=4, unique=True)):
        body[key] = draw(JSON_VALUES)
    if draw(st.booleans()):
        host = {k: draw(JSON_VALUES) for k in draw(st.lists(st.sampled_from(HOST_KEYS)))}
        body["HostConfig"] = host
    # allow_nan: NaN and Infinity as Python's encoder writes them, which no JSON allows
    return json.dumps(body, allow_nan=True).encode()


@_fuzz
@given(body=create_bodies(), name=st.one_of(st.just(""), st.sampled_from(TRICKS)))
def test_drawn_creates_are_made_or_refused_cleanly(h: httpx.Client, body: bytes, name: str) -> None:
    before = _ids(h)
    params = {"name": name} if name else {}
    answer = h.post("/containers/create", params=params, content=body, headers=JSON_TYPE)
    if answer.status_code == 201:
        made = answer.json()["Id"]
        assert made in _ids(h)
        assert h.get(f"/containers/{made}/json").status_code == 200  # it can be shown
    else:
        _docker_error(answer)
        assert _ids(h) == before, "a refused create left a container"
    _remove(h, before)
    _alive(h)


QUERIES = st.dictionaries(
    st.sampled_from(
        [
            "t",
            "signal",
            "filters",
            "since",
            "until",
            "tail",
            "name",
            "condition",
            "all",
            "limit",
            "stdout",
            "ps_args",
            "h",
            "w",
            "force",
            "size",
        ]
    ),
    st.one_of(st.sampled_from(TRICKS), st.text(max_size=20), JSON_VALUES.map(json.dumps)),
    max_size=4,
)
ENDPOINTS = [
    ("POST", "/containers/{}/stop"), ("POST", "/containers/{}/kill"),
    ("POST", "/containers/{}/restart"), ("POST", "/containers/{}/rename"),
    ("POST", "/containers/{}/wait"), ("GET", "/containers/{}/json"),
    ("GET", "/containers/{}/top"), ("GET", "/containers/{}/logs"),
    ("DELETE", "/containers/{}"), ("POST", "/exec/{}/resize"), ("GET", "/exec/{}/json"),
    ("GET", "/containers/json"), ("GET", "/events"),
]  # fmt: skip
# prune is left out: drawn without a filter, it would prune what other tests made.


@_fuzz
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    ref=st.one_of(st.sampled_from(TRICKS), st.text(min_size=1, max_size=40)),
    query=QUERIES,
)
def test_drawn_queries_never_fail_the_daemon(
    h: httpx.Client, endpoint: tuple[str, str], ref: str, query: dict[str, str]
) -> None:
    method, path = endpoint
    if path in ("/events", "/containers/{}/logs"):
        query = {**query, "until": "1"}  # a stream that ends
    if path.endswith("/wait"):
        query = {**query, "condition": "removed"}  # the container is not made: 404 at once
    target = path.format(quote(ref, safe="") or "x")
    answer = h.request(method, target, params=query, timeout=30)
    if answer.status_code >= 300:
        _docker_error(answer)
    _alive(h)


# -- written: moby's answer to each kind of bad input --------------------------------------

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (DEEP_ARRAY, 400, "invalid JSON: nested too deeply"),
        (DEEP_OBJECT, 400, "invalid JSON: nested too deeply"),
        (b'{"Cmd": ["x"], "HostConfig": []}', 400, "invalid HostConfig: an object is expected"),
        (b'{"Cmd": ["x"], "HostConfig": ""}', 400, "invalid HostConfig: an object is expected"),
        (b'{"Cmd": ["x"], "HostConfig": {"RestartPolicy": false}}', 400,
         "invalid RestartPolicy: an object is expected"),
        (b'{"Cmd": ["x"], "Healthcheck": 0}', 400, "invalid Healthcheck: an object is expected"),
        (b'{"Cmd": ["x"], "Labels": {"": "v"}}', 400, "label key is required"),
        (b'{"Cmd": ["x"], "Labels": {"k\\u0000": "v"}}', 400, "label key may not contain NUL"),
        (b'{"Cmd": ["x"], "Labels": {"k": "a\\u0000b"}}', 400, "may not contain NUL"),
        (b'{"Cmd": {"a": 1}}', 400, "invalid Cmd: a list of strings is expected"),
        (b'{"Cmd": ["x"], "Cmd": {"a": 1}}', 400, "invalid Cmd"),  # the last key wins, as Go's
        (b'{"Cmd": ["x"], "Env": [1]}', 400, "invalid Env: a list of strings is expected"),
        (b'{"Cmd": ["x"], "Env": ["=x"]}', 400, "invalid environment variable: =x"),
        (b'{"Cmd": ["x"], "StopTimeout": NaN}', 400, "invalid StopTimeout: NaN"),
        (b'{"Cmd": ["x"], "StopTimeout": 1e400}', 400, "invalid StopTimeout: Infinity"),
        (b'{"Cmd": ["x"], "StopSignal": "SIGFOO"}', 400, "invalid signal: SIGFOO"),
        (b'{"Cmd": ["' + b"a" * 300_000 + b'"]}', 400, "Cmd[0] is too long"),
        (b"\xff\xfe", 400, "invalid JSON"),
    ],
)  # fmt: skip
def test_hostile_create_bodies(h: httpx.Client, body: bytes, status: int, message: str) -> None:
    before = _ids(h)
    answer = h.post("/containers/create", content=body, headers=JSON_TYPE)
    assert answer.status_code == status, answer.text
    assert message in _docker_error(answer)
    assert _ids(h) == before
    _alive(h)


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/containers/json?filters=" + "[" * 5000 + "]" * 5000, 400,
         "invalid filter: nested too deeply"),
        ("GET", "/events?until=1&filters=" + '{"a":' * 3000 + "1" + "}" * 3000, 400,
         "invalid filter: nested too deeply"),
        ("GET", '/containers/json?filters={"status":{"running":"yes"}}', 400,
         "invalid filter 'status': an object of booleans is expected"),
        ("GET", '/containers/json?filters={"status":"running"}', 400,
         "invalid filter 'status': a list of strings is expected"),
        ("GET", "/containers/json?filters=[]", 400, "invalid filter"),
        ("POST", '/containers/prune?filters={"until":[1]}', 400, "a list of strings"),
        ("GET", "/v" + "9" * 18 + "/_ping", 400, "is too new. Maximum supported API version"),
        ("GET", "/v99.99/_ping", 400, "client version 99.99 is too new"),
        ("GET", "/vabc/_ping", 404, "page not found"),
        ("POST", "/containers/nosuch/stop?t=-1", 404, "No such container: nosuch"),
        ("POST", "/containers/nosuch/stop?signal=999", 404, "No such container: nosuch"),
        ("GET", "/events?since=5&until=1", 400,
         "`since` time (5) cannot be after `until` time (1)"),
        ("GET", "/containers/a%00b/json", 400, "invalid name or ID supplied"),
        ("GET", "/containers/%2e%2e/json", 404, "No such container: .."),
        ("GET", "/containers/..%2F..%2Fetc/json", 404, "page not found"),
        ("POST", "/containers/create?name=..%2Fx", 400, "Invalid container name (../x)"),
        ("POST", "/containers/create?name=%00", 400, "Invalid container name (\x00)"),
    ],
)  # fmt: skip
def test_hostile_queries_and_paths(
    h: httpx.Client, method: str, path: str, status: int, message: str
) -> None:
    before = _ids(h)
    answer = h.request(method, path, json={"Cmd": ["true"]} if "create" in path else None)
    assert answer.status_code == status, answer.text
    assert message in _docker_error(answer)
    assert _ids(h) == before
    _alive(h)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        ("", "malformed Content-Type header (): mime: no media type"),
        ("text/plain", "unsupported Content-Type header (text/plain): must be 'application/json'"),
        (
            "application/jsonx",
            "unsupported Content-Type header (application/jsonx): must be 'application/json'",
        ),
        ("/json", "malformed Content-Type header (/json): mime: no media type"),
        ("json", "malformed Content-Type header (json): mime: expected slash after first token"),
        ("application/", "malformed Content-Type header (application/): mime: expected token"),
    ],
)
@pytest.mark.parametrize("path", ["/containers/create", "/containers/nosuch/exec", "/exec/x/start"])
def test_a_json_body_must_say_it_is_json(
    h: httpx.Client, path: str, content_type: str, message: str
) -> None:
    """As moby's ReadJSON: only an empty body may come without ``application/json``."""
    before = _ids(h)
    headers = {"Content-Type": content_type} if content_type else {}
    answer = h.post(path, content=b'{"Cmd": ["true"]}', headers=headers)
    assert answer.status_code == 400 and _docker_error(answer).startswith(message)
    assert _ids(h) == before
    fine = h.post(
        path,
        content=b'{"Cmd": ["true"]}',
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert fine.status_code in (201, 404), fine.text
    _remove(h, before)


def test_a_lone_surrogate_is_kept_as_go_keeps_it_and_spoils_no_answer(h: httpx.Client) -> None:
    """A ``\\ud800`` escape is U+FFFD once decoded, as in Go: kept as it is, it made
    every listing, inspect and log of the container fail (no UTF-8 can hold it)."""
    body = (
        b'{"Cmd": ["echo", "\\ud800"], "Labels": {"k\\udc00": "v\\ud800", "pair": '
        b'"\\ud83d\\ude00"}, "Env": ["A=\\ud800"]}'
    )
    # In an image name it is no reference at all (moby's 400).
    image = b'{"Cmd": ["true"], "Image": "i\\udbff"}'
    refused = h.post("/containers/create", content=image, headers=JSON_TYPE)
    assert (refused.status_code, _docker_error(refused)) == (400, "invalid reference format")
    made = h.post("/containers/create?name=fz-surrogate", content=body, headers=JSON_TYPE)
    assert made.status_code == 201, made.text
    found = h.get("/containers/fz-surrogate/json").json()
    assert found["Args"] == ["\ufffd"] and "A=\ufffd" in found["Config"]["Env"]
    assert found["Config"]["Labels"] == {"k\ufffd": "v\ufffd", "pair": "\U0001f600"}
    listed = h.get("/containers/json?all=1").json()
    assert ["/fz-surrogate"] in [c["Names"] for c in listed]
    started = h.post("/containers/fz-surrogate/start")
    assert started.status_code == 204, started.text
    assert h.post("/containers/fz-surrogate/wait").json() == {"StatusCode": 0}
    logs = h.get("/containers/fz-surrogate/logs?stdout=1").content
    assert logs.endswith("\ufffd\n".encode())
    filtered = h.get("/containers/json", params={"filters": '{"label": ["k\\udc00"]}'})
    assert filtered.status_code == 200, filtered.text
    assert h.delete("/containers/fz-surrogate").status_code == 204


def test_a_start_with_a_body_is_refused_and_starts_nothing(h: httpx.Client) -> None:
    made = h.post("/containers/create?name=fz-start", json={"Cmd": ["sleep", "30"]})
    assert made.status_code == 201
    answer = h.post("/containers/fz-start/start", json={"Binds": ["/:/host"]})
    assert answer.status_code == 400
    assert _docker_error(answer) == (
        "starting container with non-empty request body was deprecated since API v1.22 "
        "and removed in v1.24"
    )
    assert h.get("/containers/fz-start/json").json()["State"]["Status"] == "created"
    assert h.post("/containers/fz-start/start", json={}).status_code == 204  # {} is fine
    assert h.delete("/containers/fz-start?force=1").status_code == 204


def test_a_refused_update_changes_nothing(h: httpx.Client) -> None:
    made = h.post("/containers/create?name=fz-update", json={"Cmd": ["true"]})
    assert made.status_code == 201
    for body in (b'{"RestartPolicy": []}', DEEP_ARRAY, b'{"RestartPolicy": {"Name": 3}}'):
        answer = h.post("/containers/fz-update/update", content=body, headers=JSON_TYPE)
        assert answer.status_code == 400, answer.text
        _docker_error(answer)
    found = h.get("/containers/fz-update/json").json()
    assert found["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
    assert h.delete("/containers/fz-update").status_code == 204


# -- raw: what no HTTP client sends ----------------------------------------------------------


def _raw(socket_path: Path, request: bytes, timeout: float = 30.0) -> bytes:
    """``request`` sent on a fresh connection; all that comes back until the server closes
    it (it does after each of these: the request's side stays open, as a client's would)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _head_and_body(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("upgrade", [False, True])
def test_an_absurd_content_length_is_refused_at_once(daemon: Daemon, upgrade: bool) -> None:
    """Refused from the header: the daemon waits for none of the bytes it announces
    (the request's side is closed only after: the answer must not need it)."""
    sock = daemon.state_dir / "docker.sock"
    path = b"/exec/nosuch/start" if upgrade else b"/containers/create"
    hijack = b"Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else b""
    request = (
        b"POST " + path + b" HTTP/1.1\r\nHost: docker\r\n" + hijack
        + f"Content-Length: {MAX_BODY * 1000}\r\nContent-Type: application/json\r\n\r\n".encode()
        + b'{"Cmd": ["true"]}'
    )  # fmt: skip
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(sock))
        s.sendall(request)
        answer = b""  # read before any end of the request's side
        while b"}" not in answer and (chunk := s.recv(65536)):
            answer += chunk
    status, document = _head_and_body(answer)
    assert status == 400, answer
    assert document["message"].startswith("the request body is too large")


def test_malformed_http_is_refused_and_the_daemon_goes_on(daemon: Daemon) -> None:
    sock = daemon.state_dir / "docker.sock"
    for request in (
        b"GARBAGE\r\n\r\n",
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: -5\r\n\r\n{}",
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: abc\r\n\r\n{}",
    ):
        assert _raw(sock, request).startswith(b"HTTP/1.1 400 "), request
    with http(daemon) as h:
        _alive(h)


def test_an_upgrade_on_an_endpoint_that_does_not_hijack(daemon: Daemon) -> None:
    """The answer is the endpoint's own, whole, then the connection closes."""
    sock = daemon.state_dir / "docker.sock"
    upgrade = b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    for path, status, message in (
        (b"/containers/nosuch/json", 404, "No such container: nosuch"),
        (b"/nowhere", 404, "page not found"),
        (b"/v" + b"9" * 18 + b"/_ping", 400, "is too new"),
    ):
        found, document = _head_and_body(
            _raw(sock, b"GET " + path + b" HTTP/1.1\r\nHost: d\r\n" + upgrade)
        )
        assert found == status and message in document["message"], (path, document)


def test_idle_and_half_sent_requests_do_not_stop_the_others(daemon: Daemon) -> None:
    """Slowloris: connections that never finish their request hold no worker thread."""
    sock = str(daemon.state_dir / "docker.sock")
    idle = []
    try:
        for i in range(40):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            if i % 2:  # a body announced and never sent, on either protocol
                hijack = b"Connection: Upgrade\r\nUpgrade: tcp\r\n" if i % 4 == 1 else b""
                s.sendall(
                    b"POST /exec/nosuch/start HTTP/1.1\r\nHost: d\r\n" + hijack
                    + b"Content-Length: 100\r\n\r\n{"
                )  # fmt: skip
            else:  # a head never ended
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Slow: ")
            idle.append(s)
        with http(daemon) as h:
            _alive(h)
            made = h.post("/containers/create?name=fz-slow", json={"Cmd": ["true"]})
            assert made.status_code == 201
            assert h.delete("/containers/fz-slow").status_code == 204
    finally:
        for s in idle:
            s.close()


def _race(n: int, call: Callable[[], httpx.Response]) -> list[int]:
    """``call`` on ``n`` threads at once; the statuses, each error checked for docker's shape."""
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        answer = call()
        if answer.status_code >= 300:
            _docker_error(answer)
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return sorted(statuses)


def test_concurrent_conflicting_calls_leave_a_consistent_store(h: httpx.Client) -> None:
    """Creates of one name race: one wins, the others are 409; removes race likewise."""
    body = {"Cmd": ["sleep", "30"]}
    created = _race(8, lambda: h.post("/containers/create?name=fz-race", json=body))
    assert created == [201] + [409] * 7
    assert h.post("/containers/fz-race/start").status_code == 204
    removed = _race(6, lambda: h.delete("/containers/fz-race?force=1"))
    assert 204 in removed and set(removed) <= {204, 404, 409}, removed
    assert h.get("/containers/fz-race/json").status_code == 404
    names = [c["Names"] for c in h.get("/containers/json?all=1").json()]
    assert ["/fz-race"] not in names


def test_a_client_that_goes_mid_body_is_no_daemon_failure(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Not logged as an unexpected failure with its traceback (a flood of such clients
    would fill the log with them): noted at debug level, and the daemon goes on."""
    quiet = Daemon(tmp_path_factory.mktemp("chartd-debug"))
    quiet.start("--log-level", "debug")
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(quiet.state_dir / "docker.sock"))
            s.sendall(
                b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"Cmd"'
            )
        deadline = time.monotonic() + 60
        while "the client went before its body was read" not in quiet.logs():
            assert time.monotonic() < deadline, quiet.logs()
            time.sleep(0.05)
        assert "failed unexpectedly" not in quiet.logs()
        with http(quiet) as h:
            _alive(h)
            assert h.get("/containers/json?all=1").json() == []  # nothing half-made
    finally:
        assert quiet.stop() == 0, quiet.logs()
