"""The read side of the Engine API as moby answers it: versions, the query as Go parses it,
routes, `ps`'s ancestor filter and the events stream's filters and attributes.

Each case is a fact of moby's (its router, ``ParseForm``, its event filter)
checked against a real daemon, through its socket and through the real
docker CLI.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_daemon import Daemon
from docker_side import DockerCli, http
from test_docker_cli import until


@pytest.fixture(scope="module")
def h(daemon: Daemon) -> Iterator[httpx.Client]:
    with http(daemon) as client:
        yield client


def _alive(h: httpx.Client) -> None:
    assert h.get("/_ping").text == "OK"


# -- versions and routes -------------------------------------------------------------------


def test_versions_compare_as_mobys_and_old_clients_read_plain_text(h: httpx.Client) -> None:
    # A missing part is 0: 1.51.0 is 1.51, the newest chartd speaks.
    assert h.get("/v1.51.0/version").status_code == 200
    assert h.get("/v1.24.0.0/_ping").text == "OK"
    too_old = (
        "client version {} is too old. Minimum supported API version is 1.24, "
        "please upgrade your client to a newer version\n"
    )
    # Below 1.24 the refusal is Go's http.Error: plain text, a newline, nosniff.
    for version in ("0.1", "1.23.9", "1", "99999999999999999999", "1." + "9" * 5000):
        answer = h.get(f"/v{version}/_ping")
        assert (answer.status_code, answer.text) == (400, too_old.format(version)), version
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.headers["x-content-type-options"] == "nosniff"
    # Too new is JSON, as any other error; a part Go can read is compared as a number.
    for version in ("1.99", "9223372036854775807", "1.51.1"):
        answer = h.get(f"/v{version}/_ping")
        assert answer.status_code == 400
        assert answer.json() == {
            "message": f"client version {version} is too new. Maximum supported API version is 1.51"
        }
    _alive(h)


def test_no_redirect_and_no_405_as_mobys_router(h: httpx.Client) -> None:
    for method, path in (
        ("GET", "/containers/json/"),
        ("GET", "/_ping/"),
        ("GET", "/v1.51/info/"),
        ("POST", "/_ping"),
        ("PUT", "/containers/x/json"),
        ("GET", "/containers/create"),
        ("PATCH", "/version"),
        ("GET", "/v1.51/nowhere"),
        ("GET", "/v1.99/nowhere"),  # moby checks the version of a routed request only
        ("GET", "/v0.1/nowhere"),
        ("POST", "/v1.99/version"),
        ("HEAD", "/containers/json"),  # moby answers HEAD on /_ping only
        ("HEAD", "/v1.51/version"),
    ):
        answer = h.request(method, path)
        assert answer.status_code == 404, path
        assert method == "HEAD" or answer.json() == {"message": "page not found"}, path
    assert h.head("/_ping").status_code == 200
    _alive(h)


# -- the query, as Go's ParseForm reads it ---------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("all=%", 'invalid URL escape "%"'),
        ("all=1&limit=%4", 'invalid URL escape "%4"'),
        ("filters=%ZZ", 'invalid URL escape "%ZZ"'),
        ("a%zz=1", 'invalid URL escape "%zz"'),
        ("all=1;limit=2", "invalid semicolon separator in query"),
        ("x=%G1&all=1;b", "invalid semicolon separator in query"),
    ],
)
def test_a_query_go_cannot_parse_is_refused_with_gos_message(
    h: httpx.Client, query: str, message: str
) -> None:
    answer = h.get(f"/containers/json?{query}")
    assert (answer.status_code, answer.json()) == (400, {"message": message})
    _alive(h)


def test_null_filters_are_no_filters_as_gos_decoder_reads_them(h: httpx.Client) -> None:
    every = h.get("/containers/json?all=1").json()
    for given in ("null", '{"status": null}', '{"label": null, "name": null}'):
        answer = h.get("/containers/json", params={"all": "1", "filters": given})
        assert answer.status_code == 200, (given, answer.text)
        assert {c["Id"] for c in answer.json()} >= {c["Id"] for c in every}, given


def test_a_key_given_twice_counts_with_its_first_value(h: httpx.Client) -> None:
    for name in ("dup-a", "dup-b"):
        assert h.post(f"/containers/create?name={name}", json={"Cmd": ["true"]}).status_code == 201
    try:
        listed = h.get("/containers/json?all=1&all=0").json()
        assert {"/dup-a", "/dup-b"} <= {n for c in listed for n in c["Names"]}
        assert len(h.get("/containers/json?all=1&limit=1&limit=5").json()) == 1
        assert h.get("/containers/json?all=0&all=1").json() == []
    finally:
        for name in ("dup-a", "dup-b"):
            h.delete(f"/containers/{name}?force=1")


# -- ps --filter ancestor ----------------------------------------------------------------------


def test_ps_ancestor_looks_the_image_up_as_moby(docker: DockerCli, h: httpx.Client) -> None:
    mine = docker.ok("create", "--name", "anc-a", "alpine", "true").strip()
    other = docker.ok("create", "--name", "anc-b", "busybox:1.36", "true").strip()
    try:
        image = h.get("/containers/anc-a/json").json()["Image"]
        for ancestor in (
            "alpine",
            "alpine:latest",
            "docker.io/library/alpine",
            "docker.io/library/alpine:latest",
            image,
            image[:19],  # sha256: and a prefix
            image.removeprefix("sha256:")[:12],  # as docker images shows it
        ):
            found = docker.ok("ps", "-aq", "--no-trunc", "--filter", f"ancestor={ancestor}")
            assert mine in found.split(), ancestor
            assert other not in found.split(), ancestor
        both = docker.ok(
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            "ancestor=alpine",
            "--filter",
            "ancestor=busybox:1.36",
        ).split()
        assert {mine, other} <= set(both)
        # A tag that is not the container's names another image; an ID no image has, none.
        for ancestor in ("alpine:3.20", "busybox", "sha256:" + "0" * 64, "FooBar"):
            found = docker.ok("ps", "-aq", "--no-trunc", "--filter", f"ancestor={ancestor}")
            assert mine not in found.split() and other not in found.split(), ancestor
    finally:
        docker.run("rm", "-f", "anc-a", "anc-b")


# -- events --------------------------------------------------------------------------------------


def _events(
    h: httpx.Client, since: float, until: float, **given: list[str]
) -> list[dict[str, Any]]:
    params = {"since": f"{since:.9f}", "until": f"{until:.9f}"}
    if given:
        params["filters"] = json.dumps(given)
    answer = h.get("/events", params=params)
    assert answer.status_code == 200, answer.text
    return [json.loads(line) for line in answer.text.splitlines() if line]


@pytest.fixture(scope="module")
def happened(h: httpx.Client) -> Iterator[tuple[str, float, float]]:
    """A container's create, start and die, with a label, and the window they fall in."""
    since = time.time() - 1
    made = h.post(
        "/containers/create?name=evfilter-web",
        json={"Image": "alpine:3.20", "Cmd": ["true"], "Labels": {"team": "x", "name": "shadow"}},
    )
    assert made.status_code == 201, made.text
    cid = made.json()["Id"]
    assert h.post(f"/containers/{cid}/start").status_code == 204
    assert h.post(f"/containers/{cid}/wait").json()["StatusCode"] == 0
    until(
        lambda: any(e["Action"] == "die" for e in _events(h, since, time.time(), container=[cid])),
        "the die event",
    )
    yield cid, since, time.time()
    h.delete(f"/containers/{cid}?force=1")


def test_event_attributes_hold_the_labels_as_mobys(
    h: httpx.Client, happened: tuple[str, float, float]
) -> None:
    cid, since, until = happened
    seen = _events(h, since, until, container=[cid])
    assert [e["Action"] for e in seen] == ["create", "start", "die"]
    for event in seen:
        attributes = event["Actor"]["Attributes"]
        # the labels, then image and name over them (a label "name" loses)
        assert attributes["team"] == "x"
        assert (attributes["image"], attributes["name"]) == ("alpine:3.20", "evfilter-web")
        assert (event["Type"], event["scope"], event["from"]) == (
            "container",
            "local",
            "alpine:3.20",
        )
    assert seen[-1]["Actor"]["Attributes"]["exitCode"] == "0"


@pytest.mark.parametrize(
    ("given", "matched"),
    [
        ({"container": ["evfilter-w"]}, True),  # a name prefix
        ({"container": ["/evfilter-web"]}, False),  # the name moby compares has no slash
        ({"type": ["container"]}, True),
        ({"type": ["image"]}, False),  # no image events: nothing, not an error
        ({"type": ["network", "container"]}, True),
        ({"scope": ["local"]}, True),
        ({"scope": ["swarm"]}, False),
        ({"network": ["evfilter-web"]}, True),  # moby's filter matches any actor by name
        ({"volume": ["nosuch"]}, False),
        ({"bogus": ["1"]}, True),  # a key moby does not know filters nothing
        ({"image": ["alpine"]}, True),  # the name without its tag
        ({"image": ["alpine:3.20"]}, True),
        ({"image": ["alpine:latest"]}, False),
        ({"label": ["team"]}, True),
        ({"label": ["team=x"]}, True),
        ({"label": ["team=y"]}, False),
        ({"label": ["image=alpine:3.20"]}, True),  # labels are matched on the attributes
        ({"event": ["die"], "label": ["team=x"]}, True),
    ],
)
def test_event_filters_as_mobys(
    h: httpx.Client, happened: tuple[str, float, float], given: dict[str, list[str]], matched: bool
) -> None:
    cid, since, until = happened
    seen = [e for e in _events(h, since, until, **given) if e["id"] == cid]
    assert bool(seen) == matched, seen


def test_events_until_alone_replays_the_past_up_to_it(
    h: httpx.Client, happened: tuple[str, float, float]
) -> None:
    cid, _, until = happened
    answer = h.get("/events", params={"until": f"{until:.9f}"})
    seen = [json.loads(line) for line in answer.text.splitlines()]
    assert [e["Action"] for e in seen if e["id"] == cid] == ["create", "start", "die"]


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),  # nothing asked: moby's default
        ("*/*", "application/jsonl"),  # anything: moby's first offer
        ("application/*", "application/jsonl"),
        ("application/x-ndjson", "application/x-ndjson"),
        ("application/json-seq", "application/json-seq"),
        ("application/json-seq;q=0.5, application/x-ndjson;q=0.9", "application/x-ndjson"),
        ("application/x-ndjson;q=0, */*;q=0.1", "application/jsonl"),
        ("text/html", "application/json"),  # nothing offered fits
    ],
)
def test_events_negotiate_their_media_type_as_mobys(
    h: httpx.Client, happened: tuple[str, float, float], accept: str | None, media_type: str
) -> None:
    cid, since, until = happened
    params = {
        "since": f"{since:.9f}",
        "until": f"{until:.9f}",
        "filters": json.dumps({"container": [cid]}),
    }
    # None: an empty Accept (httpx would send */*)
    answer = h.get("/events", params=params, headers={"Accept": accept or ""})
    assert answer.headers["content-type"] == media_type
    # RFC 7464: each record after an RS, ended by a newline; JSON lines otherwise
    records = answer.content.split(b"\n")[:-1]
    lead = b"\x1e" if media_type == "application/json-seq" else b""
    assert [r[: len(lead)] for r in records] == [lead] * 3
    assert [json.loads(r[len(lead) :])["Action"] for r in records] == ["create", "start", "die"]


def test_event_window_refusals(h: httpx.Client) -> None:
    answer = h.get("/events?since=5&until=1.5")
    assert (answer.status_code, answer.json()) == (
        400,
        {"message": "`since` time (5) cannot be after `until` time (1.5)"},
    )
    _alive(h)


def test_docker_events_cli_filters(docker: DockerCli, happened: tuple[str, float, float]) -> None:
    _, since, until = happened
    window = ("--since", f"{since:.3f}", "--until", f"{until:.3f}")
    shown = docker.ok(
        "events",
        *window,
        "--filter",
        "container=evfilter-w",
        "--format",
        "{{.Action}} {{.Actor.Attributes.team}}",
    )
    assert shown.splitlines() == ["create x", "start x", "die x"]
    assert docker.ok("events", *window, "--filter", "type=image") == ""
    done = docker.run("events", "--since", f"{until:.3f}", "--until", f"{since:.3f}")
    assert done.returncode == 1
    assert "cannot be after `until` time" in done.stderr


# -- ps filters on what no chartd container has ------------------------------------------------


@pytest.fixture(scope="module")
def two(h: httpx.Client) -> Iterator[tuple[str, str]]:
    """A running container and an exited one (exit code 0)."""
    ids = []
    for name, cmd in (("absent-run", ["sleep", "600"]), ("absent-done", ["true"])):
        made = h.post(f"/containers/create?name={name}", json={"Image": "alpine", "Cmd": cmd})
        assert made.status_code == 201, made.text
        ids.append(made.json()["Id"])
        assert h.post(f"/containers/{name}/start").status_code == 204
    assert h.post("/containers/absent-done/wait").json()["StatusCode"] == 0
    yield ids[0], ids[1]
    for cid in ids:
        h.delete(f"/containers/{cid}?force=1")


@pytest.mark.parametrize(
    ("flt", "listed"),
    [
        ("is-task=false", True),  # no container is a swarm task
        ("is-task=true", False),
        ("isolation=default", True),  # a Linux container's isolation
        ("isolation=hyperv", False),
        ("network=bridge", False),  # a chartd container is on no docker network
        ("volume=/data", False),
        ("publish=80", False),
        ("expose=8000-8080/tcp", False),
    ],
)
def test_ps_filters_on_what_no_container_has_match_as_mobys(
    docker: DockerCli, two: tuple[str, str], flt: str, listed: bool
) -> None:
    shown = set(
        docker.ok("ps", "-aq", "--no-trunc", "--filter", "name=absent-", "--filter", flt).split()
    )
    assert shown == (set(two) if listed else set()), flt


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("is-task=maybe", "invalid filter 'is-task=[maybe]'"),
        ("publish=80:80", "filter for 'publish' should not contain ':': 80:80"),
        (
            "expose=x",
            'error while looking up for expose x: strconv.ParseUint: parsing "x": invalid syntax',
        ),
        (
            "publish=70000",
            "error while looking up for publish 70000: "
            'strconv.ParseUint: parsing "70000": value out of range',
        ),
        (
            "expose=90-80",
            "error while looking up for expose 90-80: invalid range specified for port: 90-80",
        ),
    ],
)
def test_ps_filter_values_moby_refuses(docker: DockerCli, flt: str, message: str) -> None:
    done = docker.run("ps", "--filter", flt)
    assert (done.returncode, done.stderr.strip()) == (1, f"Error response from daemon: {message}")


def test_ps_exited_filter_needs_all_as_mobys(docker: DockerCli, two: tuple[str, str]) -> None:
    _, done = two
    assert docker.ok("ps", "-q", "--filter", "name=absent-", "--filter", "exited=0") == ""
    shown = docker.ok("ps", "-aq", "--no-trunc", "--filter", "name=absent-", "--filter", "exited=0")
    assert shown.split() == [done]
    # status= does list stopped containers without -a
    shown = docker.ok(
        "ps", "-q", "--no-trunc", "--filter", "name=absent-", "--filter", "status=exited"
    )
    assert shown.split() == [done]


# -- inspect's document -----------------------------------------------------------------------


def test_inspect_has_mobys_fields(docker: DockerCli, h: httpx.Client, two: tuple[str, str]) -> None:
    running, _ = two
    document = h.get(f"/containers/{running[:8]}/json").json()
    config = document["Config"]
    assert (config["Domainname"], config["User"], config["Volumes"], config["OnBuild"]) == (
        "",
        "",
        None,
        None,
    )
    # left out when unset, as moby's omitempty fields
    assert "StopSignal" not in config and "StopTimeout" not in config
    for key in ("ResolvConfPath", "HostnamePath", "HostsPath", "MountLabel", "ProcessLabel"):
        assert document[key] == "", key
    assert document["GraphDriver"]["Name"] == "chartd"
    shown = docker.ok(
        "inspect",
        "--format",
        "{{.Name}}|{{.State.Status}}|{{.State.ExitCode}}|{{.RestartCount}}"
        "|{{json .Config.Volumes}}",
        "absent-run",
        "/absent-done",
    )
    assert shown.splitlines() == ["/absent-run|running|0|0|null", "/absent-done|exited|0|0|null"]
    done = docker.run("inspect", "--format", "{{.Id}}", "absent-run", "NoSuchThing", "absent-done")
    assert done.returncode == 1
    assert done.stdout.split() == [running, two[1]]
    assert done.stderr.strip() == "Error: No such object: NoSuchThing"


# -- hostile HTTP on the socket --------------------------------------------------------------


def _exchange(daemon: Daemon, request: bytes, *, half_close: bool = False) -> bytes:
    """``request`` on a fresh connection (its side closed after, if asked); all that comes
    back until the daemon closes it."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(daemon.state_dir / "docker.sock"))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        out = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and out.rstrip().endswith((b"}", b".")):
                    break
    return out


def _chunked(body: bytes, size: int = 65536) -> bytes:
    pieces = (body[i : i + size] for i in range(0, len(body), size))
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_hostile_bodies_and_heads_get_a_clear_answer(daemon: Daemon, h: httpx.Client) -> None:
    create = (
        b"POST /containers/create?name=hostile-body HTTP/1.1\r\nHost: d\r\n"
        b"Content-Type: application/json\r\n"
    )
    chunked = create + b"Transfer-Encoding: chunked\r\n\r\n"
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    huge = b'{"Cmd": ["true"], "Env": ["A=' + b"x" * (5 * 1024 * 1024) + b'"]}'
    for request, status, message in (
        (chunked + _chunked(deep), b"400", b"invalid JSON: nested too deeply"),
        (chunked + _chunked(huge), b"400", b"the request body is too large"),
        (chunked + b"zz\r\n{}\r\n0\r\n\r\n", b"400", b"Invalid HTTP request received."),
        (b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-A: " + b"a" * (2 << 20) + b"\r\n\r\n", b"400", b""),
        (
            b"GET /containers/json?" + b"a" * (2 << 20) + b" HTTP/1.1\r\nHost: d\r\n\r\n",
            b"400",
            b"",
        ),
    ):
        answer = _exchange(daemon, request)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
        assert message in answer, answer[:300]
        _alive(h)
    # a body cut short by the client's half-close: nothing is made, the daemon goes on
    cut = create + b"Content-Length: 1000\r\n\r\n" + b'{"Cmd": ["tr'
    _exchange(daemon, cut, half_close=True)
    _alive(h)
    assert h.get("/containers/hostile-body/json").status_code == 404


def test_ps_command_quotes_the_arguments_with_a_space_as_mobys(
    docker: DockerCli, h: httpx.Client
) -> None:
    made = h.post(
        "/containers/create?name=cmd-quotes",
        json={"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "echo hi; exit 0", "a b", "c"]},
    )
    assert made.status_code == 201, made.text
    try:
        listed = h.get('/containers/json?all=1&filters={"name":["^cmd-quotes$"]}').json()
        assert [c["Command"] for c in listed] == ["/bin/sh -c 'echo hi; exit 0' 'a b' c"]
        shown = docker.ok(
            "ps", "-a", "--no-trunc", "--filter", "name=^cmd-quotes$", "--format", "{{.Command}}"
        )
        assert shown.strip() == "\"/bin/sh -c 'echo hi; exit 0' 'a b' c\""
    finally:
        h.delete("/containers/cmd-quotes?force=1")
