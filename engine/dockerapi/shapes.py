"""docker's JSON shapes: a create request read into the service's options, and the
answers (a container in a listing, inspect's document, an event) built from the service's.

Only shapes live here; what a container may be is the service's to decide.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import engine
from engine.api import _fields
from engine.api.containers_service import StatusOf
from engine.api.status_text import ps_command, ps_status
from engine.dockerapi.images import check_reference, image_id
from engine.dockerapi.versions import API_VERSION, parse_version
from engine.errors import InvalidParameter

__all__ = [
    "EXEC_FIELDS",
    "START_FIELDS",
    "console_size",
    "create_body",
    "create_options",
    "decode_json",
    "event_document",
    "exec_options",
    "exec_streams",
    "go_fields",
    "inspect_document",
    "start_options",
    "summary",
    "update_restart",
]


def decode_json(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object; InvalidParameter naming what is wrong."""
    if not body.strip():
        return {}
    found = _fields.decode_json(body, "invalid JSON")
    if not isinstance(found, dict):
        raise InvalidParameter("invalid JSON: the body must be an object")
    return found


# The fields of moby's container.Config, which a create body holds at its top level.
_CONFIG_FIELDS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
    "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
    "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
)  # fmt: skip
_HOST_FIELDS = ("RestartPolicy", "AutoRemove", "ConsoleSize")
_POLICY_FIELDS = ("Name", "MaximumRetryCount")
_HEALTH_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")
# Go's folding of a key: ASCII letters by case, and the two other letters whose fold
# set holds an ASCII one (the long s, the Kelvin sign).
_GO_FOLD = {0x17F: "S", 0x212A: "K", **{c: chr(c - 32) for c in range(ord("a"), ord("z") + 1)}}


def _go_fields(value: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``value``'s keys that name one of ``fields`` as Go's decoder matches them (the
    exact name, or one equal but for case), under that name; a later key wins, the
    others are dropped."""
    folded = {name.translate(_GO_FOLD): name for name in fields}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in fields else folded.get(key.translate(_GO_FOLD))
        if name is not None:
            out[name] = item
    return out


def create_body(body: bytes) -> dict[str, Any]:
    """A create request's body as moby's decoder reads it: its container.Config fields
    (matched as Go matches them, :func:`_go_fields`) with ``HostConfig``; moby's
    refusals of an empty body and of a body without any Config field."""
    if not body.strip():
        raise InvalidParameter("invalid JSON: got EOF while reading request body")
    found = _fields.decode_json(body, "invalid JSON")
    if found is not None and not isinstance(found, dict):
        raise InvalidParameter("invalid JSON: the body must be an object")
    given = _go_fields(found or {}, (*_CONFIG_FIELDS, "HostConfig"))
    if given.keys() <= {"HostConfig"}:
        raise InvalidParameter("config cannot be empty in order to create a container")
    return given


def _strings(value: Any, what: str) -> list[str]:
    """docker's strslice: a list of strings, or one string (a list of one)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid {what}: a list of strings is expected")
    _fields.check_args(value, what)
    return value


def _mapping(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidParameter(f"invalid {what}: an object of strings is expected")
    _fields.check_map(value, "label")  # as the gRPC API checks them: no NUL reaches the store
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    """A JSON object of the body ({} if absent); any other JSON value is refused, even
    an empty or false one (Go's decoder refuses an array or a string for a struct)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {what}: an object is expected")
    return value


def _env(value: Any) -> dict[str, str]:
    env = {}
    for entry in _strings(value, "Env"):
        key, eq, val = entry.partition("=")
        if not key:
            raise InvalidParameter(f"invalid environment variable: {entry}")
        if eq:  # "KEY" alone asks a client to fill it in: nothing for the daemon
            env[key] = val
    _fields.check_map(env, "env", forbid_eq=True)
    return env


def _typed(config: Mapping[str, Any], key: str, kind: type) -> Any:
    """``config[key]`` if it is of ``kind`` (a bool is no int), None if absent."""
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise InvalidParameter(f"invalid {key}: {json.dumps(value)[:40]}")
    return value


_HEALTH_DURATIONS = (
    ("Interval", "interval"),
    ("Timeout", "timeout"),
    ("StartPeriod", "start_period"),
    ("StartInterval", "start_interval"),
)


def _healthcheck(value: Any) -> dict[str, Any] | None:
    """docker's Healthcheck (durations in nanoseconds) as the service's (in seconds).

    The service checks the values as moby does; here only the JSON's shape.
    """
    if value is None:
        return None
    value = _go_fields(_object(value, "Healthcheck"), _HEALTH_FIELDS)
    out: dict[str, Any] = {"test": _strings(value.get("Test"), "Healthcheck.Test")}
    for key, name in _HEALTH_DURATIONS:
        nanoseconds = _typed(value, key, int)
        if nanoseconds is not None:
            out[name] = nanoseconds / 1e9
    retries = _typed(value, "Retries", int)
    if retries is not None:
        out["retries"] = retries
    return out if out["test"] else None


def console_size(value: Any) -> list[int] | None:
    """docker's ConsoleSize (``[height, width]``, unsigned), or None if absent."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**64 for n in value)
    ):
        raise InvalidParameter(f"invalid ConsoleSize: {json.dumps(value)[:40]}")
    return list(value)


def _restart(host: Mapping[str, Any]) -> str | None:
    policy = _go_fields(_object(host.get("RestartPolicy"), "RestartPolicy"), _POLICY_FIELDS)
    name = _typed(policy, "Name", str) or ""
    count = _typed(policy, "MaximumRetryCount", int) or 0
    if not name:
        return None
    if ":" in name:  # the service's text would read it as a count: moby knows no such name
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'"
        )
    return f"{name}:{count}" if count else name


# The fields of moby's exec bodies (container.ExecOptions, ExecStartOptions), by Go type.
EXEC_FIELDS: Mapping[str, str] = {
    "User": "string",
    "Privileged": "bool",
    "Tty": "bool",
    "ConsoleSize": "[2]uint",
    "AttachStdin": "bool",
    "AttachStderr": "bool",
    "AttachStdout": "bool",
    "Detach": "bool",
    "DetachKeys": "string",
    "Env": "[]string",
    "WorkingDir": "string",
    "Cmd": "[]string",
}
START_FIELDS: Mapping[str, str] = {"Detach": "bool", "Tty": "bool", "ConsoleSize": "[2]uint"}


def _go_kind(value: Any) -> str:
    """How Go's encoding/json names a JSON value it cannot store."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _go_value(value: Any, go_type: str) -> tuple[Any, tuple[str, str] | None]:
    """``value`` as Go stores it in a field of ``go_type``, or what Go's error names:
    the value's kind and the type it could not go into."""
    kind = _go_kind(value)
    if go_type in ("bool", "string"):
        fits = kind == go_type
        return value, None if fits else (kind, go_type)
    if kind != "array":
        return value, (kind, go_type)
    if go_type == "[]string":  # a null element is the empty string
        for item in value:
            if item is not None and not isinstance(item, str):
                return value, (_go_kind(item), "string")
        return ["" if v is None else v for v in value], None
    # [2]uint: what is missing is zero, what is past the end skipped unread
    size = [0, 0]
    for index, item in enumerate(value[:2]):
        if item is None:
            continue
        if _go_kind(item) != "number":
            return value, (_go_kind(item), "uint")
        if isinstance(item, float) or not 0 <= item < 2**64:
            return value, (f"number {json.dumps(item)}", "uint")
        size[index] = item
    return size, None


def go_fields(body: Mapping[str, Any], struct: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """``body`` as Go's encoding/json fills moby's ``struct``, keyed by its field names.

    As Go's decoder: a key names a field whatever its case (an exact match
    first), a later key over an earlier one, unknown keys are ignored, a null
    leaves a bool or string as it was and empties a list; the first value of
    the wrong type is refused with Go's message, as moby's ``ReadJSON`` wraps it.
    """
    folded = {name.lower(): name for name in fields}
    found: dict[str, Any] = {}
    for key, value in body.items():
        name = key if key in fields else folded.get(key.lower())
        if name is None:
            continue
        if value is None:
            if fields[name].startswith("["):
                found.pop(name, None)
            continue
        stored, wrong = _go_value(value, fields[name])
        if wrong is not None:
            raise InvalidParameter(
                f"invalid JSON: json: cannot unmarshal {wrong[0]} into Go struct field "
                f"{struct}.{name} of type {wrong[1]}"
            )
        found[name] = stored
    return found


def exec_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """The service's exec_create keywords (with ``cmd``) for docker's ExecConfig.

    ``AttachStdin`` (``docker exec -i``) gives the exec a stdin that its
    attached start feeds (moby's OpenStdin of an exec is its AttachStdin),
    ``Tty`` (``docker exec -t``) a terminal, whose first window is
    ``ConsoleSize``; ``User``, ``Privileged`` and ``DetachKeys`` are ignored
    (an exec runs as its container's process does). The streams to attach
    are the caller's to keep (:func:`exec_streams`).
    """
    for key in ("AttachStdout", "AttachStderr", "Detach", "Privileged"):
        _typed(body, key, bool)
    working_dir = _typed(body, "WorkingDir", str)
    return {
        "cmd": _strings(body.get("Cmd"), "Cmd"),
        "env": _env(body.get("Env")),
        "working_dir": _fields.optional_text(working_dir or "", "WorkingDir", limit=4096),
        "attach_stdin": bool(_typed(body, "AttachStdin", bool)),
        "tty": bool(_typed(body, "Tty", bool)),
        "console_size": console_size(body.get("ConsoleSize")),
    }


def start_options(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """An exec start's body (``Detach``, ``Tty``; ``ConsoleSize`` ignored): whether it
    detaches, and whether its stream is raw (moby frames it unless the start says Tty)."""
    return bool(_typed(body, "Detach", bool)), bool(_typed(body, "Tty", bool))


def exec_streams(body: Mapping[str, Any]) -> frozenset[str]:
    """The streams an ExecConfig attaches (``AttachStdout``, ``AttachStderr``)."""
    return frozenset(
        stream
        for stream, key in (("stdout", "AttachStdout"), ("stderr", "AttachStderr"))
        if body.get(key) is True
    )


def update_restart(body: Mapping[str, Any]) -> str | None:
    """The restart policy of docker's UpdateConfig (None: unchanged).

    The rest of it is resources, which chartd does not limit: a setting of
    one is refused (docker's CLI sends each unset one as zero or empty).
    """
    for key, value in body.items():
        if key != "RestartPolicy" and value not in (None, 0, "", [], {}):
            raise InvalidParameter(f"chartd sets no resource limits: {key} cannot be updated")
    return _restart(body)


def _image(body: Mapping[str, Any]) -> str | None:
    """The create body's Image: a reference in docker's grammar (moby's 400 otherwise), or none."""
    image = _fields.optional_text(_typed(body, "Image", str) or "", "Image", limit=4096)
    if image:
        check_reference(image)
    return image


def create_options(
    name: str | None, body: Mapping[str, Any], api: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """The service's create keywords (with ``cmd``) for docker's create body and ``name``.

    ``Tty`` (``docker run -t``) gives its process a pseudo-terminal, its window
    ``HostConfig.ConsoleSize`` (what the CLI's terminal measures); ``OpenStdin``
    (``docker run -i``), ``StdinOnce`` and ``AttachStdin`` are the container's. What else
    docker's body holds and chartd has no use for (ports, mounts, resources)
    is ignored, as docs/docker-api.md lists. As moby's router, what an older ``api``
    version did not have is dropped: ``AutoRemove`` before 1.25 (its client removes the
    container itself), ``ConsoleSize`` before 1.42, ``StartInterval`` before 1.44.
    """
    api = api or parse_version(API_VERSION)
    host = _go_fields(_object(body.get("HostConfig"), "HostConfig"), _HOST_FIELDS)
    stop_signal = _typed(body, "StopSignal", str)
    working_dir = _typed(body, "WorkingDir", str)
    healthcheck = _healthcheck(body.get("Healthcheck"))
    size = console_size(host.get("ConsoleSize"))
    if healthcheck is not None and api < (1, 44):
        healthcheck.pop("start_interval", None)
    return {
        "cmd": _strings(body.get("Cmd"), "Cmd"),
        "entrypoint": _strings(body.get("Entrypoint"), "Entrypoint"),
        "name": name or None,  # the service checks it as moby does, with moby's message
        "env": _env(body.get("Env")),
        "working_dir": _fields.optional_text(working_dir or "", "WorkingDir", limit=4096),
        "labels": _mapping(body.get("Labels"), "Labels"),
        "stop_signal": _fields.optional_text(stop_signal or "", "StopSignal", limit=32),
        "stop_timeout": _typed(body, "StopTimeout", int),
        "restart": _restart(host),
        "auto_remove": bool(_typed(host, "AutoRemove", bool)) and api >= (1, 25),
        "image": _image(body),
        "healthcheck": healthcheck,
        "open_stdin": bool(_typed(body, "OpenStdin", bool)),
        "stdin_once": bool(_typed(body, "StdinOnce", bool)),
        "attach_stdin": bool(_typed(body, "AttachStdin", bool)),
        "tty": bool(_typed(body, "Tty", bool)),
        "console_size": size if api >= (1, 42) else None,
    }


def summary(
    e: engine.Entity, status_of: StatusOf, now: float | None = None, *, health: str = "none"
) -> dict[str, Any]:
    """A container as ``GET /containers/json`` lists it (``health``: its health status)."""
    data = e.data
    image = str(data.get("image") or "")
    status = status_of(e.configuration, data)
    return {
        "Id": e.id,
        "Names": [str(data.get("name") or "")],
        "Image": image,
        "ImageID": image_id(image),
        "Command": ps_command([str(a) for a in data.get("cmd") or ()]),
        "Created": int(e.created_at),
        "Ports": [],
        "Labels": dict(data.get("labels") or {}),
        "State": status,
        "Status": ps_status(
            status,
            started=float(data["started_at"]) if data.get("started_at") else None,
            finished=float(data["finished_at"]) if data.get("finished_at") else None,
            exit_code=int(data.get("exit_code") or 0),
            health="" if health == "none" else health,
            now=time.time() if now is None else now,
        ),
        "HostConfig": {"NetworkMode": "default"},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [],
    }


_UNSET_PATHS = (
    "ResolvConfPath",
    "HostnamePath",
    "HostsPath",
    "MountLabel",
    "ProcessLabel",
    "AppArmorProfile",
)


def inspect_document(found: Mapping[str, Any]) -> dict[str, Any]:
    """The service's inspect document, completed with the fields docker's clients read."""
    config = {
        "Hostname": str(found["Id"])[:12],
        "Domainname": "",
        "User": "",
        "Tty": False,
        "OpenStdin": False,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Volumes": None,
        "OnBuild": None,
        **found["Config"],
    }
    # moby leaves these out when unset (omitempty), where docker's structs would read zero
    for key, unset in (("StopSignal", ""), ("StopTimeout", None)):
        if key in config and config[key] == unset:
            del config[key]
    host = {"NetworkMode": "default", "LogConfig": {"Type": "json-file", "Config": {}}}
    return {
        # moby's fields of what chartd has none of: empty, as for a container without
        **dict.fromkeys(_UNSET_PATHS, ""),
        "GraphDriver": {"Data": None, "Name": "chartd"},
        **found,
        "Image": image_id(str(found.get("Image") or "")),
        "Driver": "chartd",
        "Platform": "linux",
        "Mounts": [],
        "Config": config,
        "HostConfig": {**host, **found["HostConfig"]},
    }


def event_document(
    ev: engine.Event, at_ns: int, image: str, labels: Mapping[str, Any]
) -> dict[str, Any]:
    """One container event as ``GET /events`` streams it: its attributes with the
    container's labels over them, then ``image`` and ``name``, as moby's."""
    attributes = {str(k): str(v) for k, v in ev.attributes.items()}
    attributes.update({str(k): str(v) for k, v in labels.items()})
    attributes.update(image=image, name=ev.entity_name)
    return {
        "status": ev.type,
        "id": ev.entity_id,
        "from": image,
        "Type": "container",
        "Action": ev.type,
        "Actor": {"ID": ev.entity_id, "Attributes": attributes},
        "scope": "local",
        "time": at_ns // 10**9,
        "timeNano": at_ns,
    }
