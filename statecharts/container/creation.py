"""A new container: its create options, moby's checks of them, the data they give it.

``Containers.create`` takes the command and, by keyword, the options of
:class:`CreateOptions`; :func:`initial_data` checks them as moby's create
does (with its messages) and makes the container's first data.
:func:`generated_name` and :func:`name_in_use` are moby's name for a
container created without one, and its refusal of a name already taken.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from engine.errors import InvalidParameter
from statecharts.container import moby
from statecharts.container.health import healthcheck_data

__all__ = ["CreateOptions", "check_keywords", "generated_name", "initial_data", "name_in_use"]

# What one container may store. moby sets no such bounds; without them a create could
# grow the database without end and make every listing too large for the API.
MAX_ARGS_BYTES = 1024 * 1024
"""The command and environment together, in bytes as execve counts them (ARG_MAX is 2 MiB)."""
MAX_LABELS = 256
"""Labels per container."""
MAX_LABELS_BYTES = 64 * 1024
"""Label keys and values together, in bytes."""
MAX_PATH = 4096  # PATH_MAX
GENERATED_TRIES = 6
"""Tries of an adjective_scientist name before a random one (moby's count)."""
_INT32 = 2**31  # the API carries the stop timeout as an int32
_MAX_IMAGE = 4096  # moby's reference grammar has no bound; a name is no place for more
_STDIN = ("open_stdin", "stdin_once", "attach_stdin")
# A generated name is an adjective and a scientist's name; past a few taken ones, a random
# hexadecimal one (moby falls back to the container's short ID after six tries).
_ADJECTIVES = (
    "amber", "bold", "brave", "bright", "busy", "calm", "clever", "cosmic", "crisp", "daring",
    "eager", "early", "fancy", "fond", "frosty", "gentle", "glad", "golden", "happy", "hardy",
    "honest", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucid", "lucky", "merry",
    "mighty", "modest", "nimble", "noble", "patient", "plucky", "polite", "proud", "quick",
    "quiet", "rapid", "ready", "serene", "sharp", "shiny", "silent", "sleepy", "smart", "snowy",
    "solid", "steady", "sturdy", "sunny", "swift", "tender", "tidy", "trusty", "vivid", "warm",
    "wise", "witty", "young", "zealous", "zesty",
)  # fmt: skip
_NOUNS = (
    "agnesi", "archimedes", "babbage", "bardeen", "bohr", "boole", "cantor", "carson",
    "cauchy", "chandrasekhar", "curie", "darwin", "descartes", "dirac", "einstein", "euclid",
    "euler", "faraday", "fermat", "fermi", "feynman", "franklin", "galileo", "galois", "gauss",
    "germain", "goodall", "hamilton", "hawking", "heisenberg", "hilbert", "hopper", "hypatia",
    "jackson", "johnson", "kepler", "knuth", "lamarr", "laplace", "leibniz", "lovelace",
    "maxwell", "meitner", "mendel", "mirzakhani", "newton", "noether", "pascal", "pasteur",
    "planck", "poincare", "ramanujan", "riemann", "ritchie", "sagan", "shannon", "tesla",
    "thompson", "turing", "volta", "wilson", "wozniak", "yalow",
)  # fmt: skip


class CreateOptions(TypedDict, total=False):
    """What a new container runs with besides its command; every one may be left out.

    ``name`` (with or without ``/``; generated when empty), ``env``,
    ``working_dir`` (absolute), ``labels``, ``stop_signal`` (a name or a
    number), ``stop_timeout`` (seconds, negative for none), ``restart`` (moby's
    restart policy text, e.g. ``on-failure:3``), ``auto_remove`` and
    ``healthcheck`` (moby's HealthConfig: ``test``, durations in seconds,
    ``retries``; see :func:`~statecharts.container.health.healthcheck_data`).
    ``entrypoint`` goes before ``cmd`` in what runs (docker's Entrypoint);
    ``image`` (a name only: chartd runs processes on the host) is recorded as given.
    ``open_stdin`` gives the process a stdin the attaches write (docker's ``-i``),
    ``stdin_once`` closes it when the first attach's stdin ends; ``attach_stdin``
    is recorded as given. ``tty`` gives the process a pseudo-terminal (docker's ``-t``),
    whose first window is ``console_size`` (``[height, width]``; zeros: none set).
    """

    name: str | None
    env: Mapping[str, str] | None
    working_dir: str | None
    labels: Mapping[str, str] | None
    stop_signal: str | int | None
    stop_timeout: int | None
    restart: str | None
    auto_remove: bool
    entrypoint: Sequence[str] | None
    image: str | None
    healthcheck: Mapping[str, Any] | None
    open_stdin: bool
    stdin_once: bool
    attach_stdin: bool
    tty: bool
    console_size: Sequence[int] | None


def check_keywords(options: Mapping[str, Any]) -> None:
    """Refuse, as a call with an unknown keyword is refused, an option that does not exist."""
    unknown = [key for key in options if key not in CreateOptions.__optional_keys__]
    if unknown:
        raise TypeError(f"create() got an unexpected keyword argument {unknown[0]!r}")


def initial_data(cmd: Sequence[str], options: CreateOptions) -> dict[str, Any]:
    """The container's first data but its name, once ``cmd`` and ``options`` pass moby's checks."""
    entrypoint = list(options.get("entrypoint") or [])
    if entrypoint == [""]:  # moby's reset: `--entrypoint ""` runs the command alone
        entrypoint = []
    cmd = [*entrypoint, *cmd]
    if not cmd:
        raise InvalidParameter("No command specified")
    if not all(isinstance(a, str) for a in cmd):
        raise InvalidParameter("the command must be a list of strings")
    _check_sizes(cmd, options)
    image = options.get("image") or ""
    if not isinstance(image, str) or len(image) > _MAX_IMAGE:
        raise InvalidParameter(f"invalid image name: at most {_MAX_IMAGE} characters")
    policy = moby.parse_restart_policy(options.get("restart"))
    auto_remove = options.get("auto_remove", False)
    if auto_remove and policy.name != "no":
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    stop_signal = options.get("stop_signal")
    signal = moby.parse_signal(stop_signal) if stop_signal not in (None, "") else None
    stop_timeout = options.get("stop_timeout")
    if stop_timeout is not None and (
        not isinstance(stop_timeout, int) or not -_INT32 <= stop_timeout < _INT32
    ):
        raise InvalidParameter(f"invalid stop timeout: {stop_timeout!r}")
    working_dir = options.get("working_dir")
    if working_dir and not working_dir.startswith("/"):
        raise InvalidParameter(
            f"the working directory '{working_dir}' is invalid, it needs to be an absolute path"
        )
    healthcheck = healthcheck_data(options.get("healthcheck"))
    return {
        **({"healthcheck": healthcheck} if healthcheck else {}),
        "cmd": list(cmd),
        "env": dict(options.get("env") or {}),
        "working_dir": working_dir,
        "labels": dict(options.get("labels") or {}),
        "stop_signal": signal or moby.DEFAULT_STOP_SIGNAL,
        "stop_signal_set": signal is not None,
        "stop_timeout": stop_timeout,
        "restart_policy": policy.as_data(),
        "auto_remove": bool(auto_remove),
        "entrypoint": entrypoint,
        "image": image,
        **{key: bool(options.get(key)) for key in _STDIN},
        # Only when set: a container without one is valid under version 3 too.
        **({"tty": True} if options.get("tty") else {}),
        **_console_size(options),
        "restart_count": 0,
        "exit_code": 0,
        "error": "",
        "pid": 0,
    }


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _console_size(options: CreateOptions) -> dict[str, list[int]]:
    """``{"console_size": [height, width]}`` for a TTY given one that is not zeros, else {}."""
    size = options.get("console_size")
    if size is None:
        return {}
    if len(size) != 2 or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**64 for n in size
    ):
        raise InvalidParameter(f"invalid console size: {list(size)!r}")
    return {"console_size": list(size)} if options.get("tty") and any(size) else {}


def _check_sizes(cmd: Sequence[str], options: CreateOptions) -> None:
    """Refuse a container larger than the caps allow (InvalidParameter, sizes in the message)."""
    env = options.get("env") or {}
    size = sum(_bytes(a) + 1 for a in cmd) + sum(_bytes(f"{k}={v}") + 1 for k, v in env.items())
    if size > MAX_ARGS_BYTES:
        raise InvalidParameter(
            f"the command and environment are too long: {size} bytes, at most {MAX_ARGS_BYTES}"
        )
    labels = options.get("labels") or {}
    if len(labels) > MAX_LABELS:
        raise InvalidParameter(f"too many labels: {len(labels)}, at most {MAX_LABELS}")
    size = sum(_bytes(k) + _bytes(v) for k, v in labels.items())
    if size > MAX_LABELS_BYTES:
        raise InvalidParameter(
            f"the labels are too large: {size} bytes, at most {MAX_LABELS_BYTES}"
        )
    working_dir = options.get("working_dir") or ""
    if len(working_dir) > MAX_PATH:
        raise InvalidParameter(
            f"the working directory is too long: {len(working_dir)} characters, at most {MAX_PATH}"
        )


def generated_name(attempt: int = 0) -> str:
    """A name for a container created without one: moby's adjective_scientist for the
    first few ``attempt``s, then twelve random hexadecimal digits (moby's short ID)."""
    if attempt >= GENERATED_TRIES:
        return "/" + secrets.token_hex(6)
    return f"/{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"


def name_in_use(canonical: str, holder_id: str) -> str:
    """moby's refusal of the name ``canonical``, which the container ``holder_id`` holds."""
    return (
        f'Conflict. The container name "{canonical}" is already in use by container '
        f'"{holder_id}". You have to remove (or rename) that container to be able to '
        "reuse that name."
    )
