"""The Engine API's HTTP answers as moby gives them, hostile requests included."""

from __future__ import annotations

import contextlib
import json

import httpx
from api_daemon import Daemon
from docker_side import http

from engine.dockerapi.calls import THREADS

JSON_TYPE = {"Content-Type": "application/json"}


def test_the_http_layer_speaks_mobys_dialect(daemon: Daemon) -> None:
    with http(daemon) as h:
        head = h.head("/_ping")
        assert (head.status_code, head.text, head.headers["API-Version"]) == (200, "", "1.51")
        assert h.get("/v1.24/_ping").text == "OK"
        old = h.get("/v1.12/version")  # in plain text, which a client that old reads
        assert (old.status_code, old.text) == (
            400,
            "client version 1.12 is too old. Minimum supported API version "
            "is 1.24, please upgrade your client to a newer version\n",
        )
        new = h.get("/v9.1/info")
        assert new.status_code == 400
        assert new.json()["message"].startswith("client version 9.1 is too new")
        assert h.get("/nowhere").json() == {"message": "page not found"}
        # Any valid reference is answered as a local image (so that a tool that looks
        # an image up before it creates finds it); docker's grammar is enforced.
        app = h.get("/images/registry.example/team/app:1.2/json").json()
        assert app["RepoTags"] == ["registry.example/team/app:1.2"]
        for alias in ("alpine", "alpine:latest", "docker.io/library/alpine:latest"):
            found = h.get(f"/images/{alias}/json")
            assert found.status_code == 200, alias
            assert found.json()["RepoTags"] == ["alpine:latest"]
        assert (
            len({h.get(f"/images/{a}/json").json()["Id"] for a in ("alpine", "alpine:latest")}) == 1
        )
        for name, message in (
            (
                "FooBar",
                "invalid reference format: repository name (library/FooBar) must be lowercase",
            ),
            (
                "team/App:1",
                "invalid reference format: repository name (team/App) must be lowercase",
            ),
            ("alpine:", "invalid reference format"),
            ("a___b", "invalid reference format"),
        ):
            bad = h.get(f"/images/{name}/json")
            assert (bad.status_code, bad.json()) == (400, {"message": message}), name
        # An ID names an image a container was made from, or none.
        zeros = "sha256:" + "0" * 64
        unknown = h.get(f"/images/{zeros}/json")
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"message": f"No such image: {zeros}"},
        )
        made = h.post("/containers/create", json={"Cmd": ["true"], "Image": "team/app:2"})
        assert made.status_code == 201
        used = h.get("/images/team/app:2/json").json()["Id"]
        for ref in (used, used[len("sha256:") :], used[len("sha256:") :][:12]):
            assert h.get(f"/images/{ref}/json").json()["RepoTags"] == ["team/app:2"], ref
        for body, why in (
            (b"{", "invalid JSON"),
            (b"[]", "invalid JSON: the body must be an object"),
            (b'{"Cmd": [1]}', "invalid Cmd"),
            (b'{"Cmd": ["x"], "Tty": "yes"}', 'invalid Tty: "yes"'),
            (b'{"Cmd": ["x"], "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}',
             "invalid restart policy: unknown policy 'sometimes'"),
            (b'{}', "config cannot be empty in order to create a container"),
            (b'{"Image": "alpine"}', "No command specified"),
            (b'{"Cmd": ["x"], "Image": "FooBar"}',
             "invalid reference format: repository name (library/FooBar) must be lowercase"),
        ):  # fmt: skip
            bad = h.post("/containers/create", content=body, headers=JSON_TYPE)
            assert bad.status_code == 400, body
            assert why in bad.json()["message"], body
        taken = h.post("/containers/create?name=dup", json={"Cmd": ["true"]})
        assert taken.status_code == 201
        again = h.post("/containers/create?name=dup", json={"Cmd": ["true"]})
        assert again.status_code == 409
        assert again.json()["message"].startswith('Conflict. The container name "/dup"')
        assert h.post("/containers/dup/stop").status_code == 304
        assert h.get("/containers/json?filters={bad").status_code == 400
        assert h.get('/containers/json?filters={"color":["red"]}').json() == {
            "message": "invalid filter 'color'"
        }
        wait = h.post("/containers/dup/wait?condition=sometime")
        assert wait.json() == {"message": 'invalid condition: "sometime"'}
        assert h.delete("/containers/dup").status_code == 204
        gone = h.post("/containers/dup/exec", json={"Cmd": ["true"]})
        assert (gone.status_code, gone.json()) == (404, {"message": "No such container: dup"})
        assert h.get("/containers/dup/top").json() == {"message": "No such container: dup"}


def test_hostile_requests_are_refused_clearly(daemon: Daemon) -> None:
    with http(daemon) as h:
        made = h.post("/containers/create?name=hostile", json={"Cmd": ["sleep", "60"]})
        assert made.status_code == 201
        assert h.post("/containers/hostile/start").status_code == 204
        for method, path, status, message in (
            ("POST", "/containers/hostile/stop?t=abc", 400, 'strconv.Atoi: parsing "abc": invalid'),
            ("POST", "/containers/hostile/stop?t=" + "9" * 20, 400, "value out of range"),
            ("POST", "/containers/hostile/kill?signal=FOO", 400, "invalid signal: FOO"),
            ("GET", "/containers/%01x/json", 400, "invalid name or ID supplied"),
            ("GET", "/containers/" + "a" * 300 + "/json", 400, "invalid name or ID supplied"),
            ("GET", "/containers/hostile/logs", 400, "you must choose at least one stream"),
            ("GET", "/containers/hostile/logs?stdout=1&until=x", 400, 'parsing "x": invalid'),
            ("POST", '/containers/prune?filters={"until":["soon"]}', 400, "failed to parse"),
            ("GET", "/events?since=yesterday", 400, "is not a timestamp"),
            ("GET", '/containers/json?filters={"status":["sleepy"]}', 400, "status=sleepy"),
            ("GET", '/containers/json?filters={"status":[1]}', 400, "a list of strings"),
            ("GET", '/containers/json?filters={"health":["fine"]}', 400, "for health: fine"),
            ("GET", '/containers/json?filters={"publish":["80:80"]}', 400, "contain ':'"),
            ("POST", "/containers/hostile/exec", 400, "No exec command specified"),
            ("POST", "/exec/nosuch/start", 404, "No such exec instance: nosuch"),
            ("POST", "/exec/nosuch/resize?h=1&w=1", 404, "No such exec instance: nosuch"),
            ("POST", "/exec/nosuch/resize?h=1", 400, 'strconv.Atoi: parsing "": invalid syntax'),
            ("POST", "/containers/hostile/resize?h=x&w=1", 400, 'parsing "x": invalid syntax'),
            ("POST", "/containers/hostile/resize?h=1&w=" + "9" * 20, 400, "value out of range"),
            ("POST", "/containers/nosuch/resize?h=1&w=1", 404, "No such container: nosuch"),
            ("GET", "/exec/" + "e" * 300 + "/json", 400, "invalid name or ID supplied"),
            ("POST", "/images/create?fromImage=alpine", 501, "no registry"),
        ):
            answer = h.request(method, path)
            assert answer.status_code == status, (path, answer.text)
            assert message in answer.json()["message"], (path, answer.text)
        huge = h.post("/containers/create", content=b" " * (5 * 1024 * 1024))
        assert (huge.status_code, "too large" in huge.json()["message"]) == (400, True)
        # Nothing of it was done: the container still runs, and listing still works.
        assert h.get("/containers/hostile/json").json()["State"]["Status"] == "running"
        old_style = json.dumps({"name": {"hostile": True}})
        listed = h.get("/containers/json", params={"filters": old_style}).json()
        assert [c["Names"] for c in listed] == [["/hostile"]]
        assert h.delete("/containers/hostile?force=1").status_code == 204


def test_wait_limit_and_list_shapes(daemon: Daemon) -> None:
    with http(daemon) as h:
        for name in ("shape1", "shape2"):
            made = h.post(f"/containers/create?name={name}", json={"Cmd": ["true"], "Image": "x"})
            assert made.status_code == 201
        assert h.post("/containers/shape1/wait").json() == {"StatusCode": 0}
        newest = h.get("/containers/json?limit=1").json()
        assert [c["Names"] for c in newest] == [["/shape2"]]
        summary = newest[0]
        assert (summary["State"], summary["Status"], summary["Image"]) == (
            "created",
            "Created",
            "x",
        )
        assert summary["Command"] == "true"
        assert h.get("/containers/json").json() == []  # none runs
        for name in ("shape1", "shape2"):
            assert h.delete(f"/containers/{name}").status_code == 204


def test_idle_followers_hold_no_worker_thread(daemon: Daemon) -> None:
    followers = 2 * (THREADS + 8)  # of each kind, more than the worker threads
    with http(daemon) as h:
        made = h.post("/containers/create?name=followed", json={"Cmd": ["sleep", "60"]})
        assert made.status_code == 201
        assert h.post("/containers/followed/start").status_code == 204
    limits = httpx.Limits(max_connections=2 * followers + 8)
    with http(daemon, limits=limits) as h, contextlib.ExitStack() as streams:
        for i in range(followers):
            path = "/events" if i % 2 else "/containers/followed/logs?follow=1&stdout=1"
            opened = streams.enter_context(h.stream("GET", path))
            assert opened.status_code == 200
        # Every follower is open and idle: the other calls are still served.
        listed = h.get("/containers/json").json()
        assert [c["Names"] for c in listed] == [["/followed"]]
        assert h.post("/containers/followed/stop?t=1").status_code == 204
    with http(daemon) as h:
        assert h.delete("/containers/followed").status_code == 204
