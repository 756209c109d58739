"""Images as chartd has them: names recorded by create, answered as local images.

chartd runs commands on the host, so there are no images: any valid image
reference is accepted by create and recorded (so that ``docker run`` never
pulls), and ``GET /images/{name}/json`` answers for any valid reference as a
local image without layers (so that tools that look an image up before they
create, as compose does, find it). A reference that is not valid in docker's
grammar is refused as moby refuses it (``invalid reference format``), which
docker's ``inspect`` skips: ``docker inspect FooBar`` says ``No such object``.
An image ID (``sha256:`` and 64 hex digits, or a prefix of one) names one of
the images containers were made from, or none (404). ``GET /images/json``
lists the images containers were made from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from engine.errors import InvalidParameter, NotFound

__all__ = [
    "answers_alone",
    "check_reference",
    "familiar_image",
    "familiar_name",
    "find_image",
    "image_document",
    "image_id",
    "image_summaries",
    "image_summary",
    "images_used",
]

_HUB = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_ID = re.compile(r"(?:sha256:)?[0-9a-f]{64}")
_SHORT_ID = re.compile(r"(?:sha256:)?[0-9a-f]{1,63}")
_NAME_MAX = 255


def familiar_image(name: str) -> str:
    """An image reference as docker shows it: Docker Hub's prefixes dropped, ``:latest`` added.

    ``docker.io/library/alpine`` and ``alpine`` are both ``alpine:latest``;
    a reference with a tag or a digest keeps it.
    """
    for prefix in _HUB:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            name = name.removeprefix("library/") if name.count("/") == 1 else name
            break
    last = name.rsplit("/", 1)[-1]
    return name if "@" in name or ":" in last else name + ":latest"


def familiar_name(name: str) -> str:
    """An image reference's familiar name, without tag or digest (``alpine`` for
    ``docker.io/library/alpine:3.20``); one docker's grammar refuses is kept as it is."""
    try:
        check_reference(name)
    except InvalidParameter:
        return name
    familiar = familiar_image(name).partition("@")[0]
    head, slash, last = familiar.rpartition("/")
    return head + slash + last.partition(":")[0]


def image_id(name: str) -> str:
    """The ID chartd gives an image name: a digest of its familiar form (there is no image).

    ``alpine`` and ``docker.io/library/alpine:latest`` are one image, with one ID.
    """
    familiar = familiar_image(name) if name else ""
    return "sha256:" + hashlib.sha256(familiar.encode()).hexdigest()


def check_reference(name: str) -> None:
    """InvalidParameter with moby's message unless ``name`` is a reference in docker's grammar."""
    rest, _, digest = name.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidParameter("invalid reference format")
    # A tag is a colon in the last component (a colon before it is a registry's port).
    last = rest.rpartition("/")[2]
    repository = rest
    if ":" in last:
        tag = last.partition(":")[2]
        repository = rest[: len(rest) - len(tag) - 1]
        if not _TAG.fullmatch(tag):
            raise InvalidParameter("invalid reference format")
    first, slash, remainder = repository.partition("/")
    domain = bool(slash) and (
        any(c in first for c in ".:") or first == "localhost" or first != first.lower()
    )
    if domain and not _DOMAIN.fullmatch(first):
        raise InvalidParameter("invalid reference format")
    path = remainder if domain else repository
    if len(repository) > _NAME_MAX:
        raise InvalidParameter(
            "invalid reference format: repository name must not be more than 255 characters"
        )
    if path != path.lower():
        shown = path if domain or "/" in path else "library/" + path
        raise InvalidParameter(
            f"invalid reference format: repository name ({shown}) must be lowercase"
        )
    if not _PATH.fullmatch(path):
        raise InvalidParameter("invalid reference format")


def answers_alone(name: str) -> bool:
    """Whether ``name``'s answer needs no look at the images containers were made from.

    A valid reference that cannot be an ID is answered as itself: a recorded
    name of the same familiar form has the same document (:func:`image_document`
    reads only that form). An ID, or a name docker's grammar refuses (recorded
    by a container made before create checked it), needs the recorded names.
    """
    if _ID.fullmatch(name) or _SHORT_ID.fullmatch(name):
        return False
    try:
        check_reference(name)
    except InvalidParameter:
        return False
    return True


def find_image(name: str, known: set[str]) -> str:
    """The image ``name`` refers to: one of ``known`` (by name or ID), or ``name`` itself.

    An ID or an ID prefix must be one of ``known``'s (NotFound otherwise); a
    reference that is not valid is InvalidParameter (moby's 400).
    """
    wanted = familiar_image(name)
    for image in sorted(known):
        if familiar_image(image) == wanted:
            return image
    is_id = _ID.fullmatch(name) is not None
    if is_id or _SHORT_ID.fullmatch(name):
        digest = name.removeprefix("sha256:")
        found = {i for i in known if image_id(i).removeprefix("sha256:").startswith(digest)}
        if len(found) == 1:
            return found.pop()
        if is_id:
            raise NotFound(f"No such image: {name}")
    check_reference(name)
    return name


def images_used(images: Iterable[object]) -> dict[str, int]:
    """The images containers were made from (familiar names), each with how many use it.

    ``images`` holds each container's recorded image; an empty one is not counted.
    ``GET /images/json`` lists these, and ``/info`` counts them.
    """
    used: dict[str, int] = {}
    for name in images:
        if name:
            tag = familiar_image(str(name))
            used[tag] = used.get(tag, 0) + 1
    return used


def image_summary(tag: str, containers: int) -> dict[str, Any]:
    """``GET /images/json``: one image (a familiar name) and how many containers use it."""
    return {
        "Id": image_id(tag),
        "ParentId": "",
        "RepoTags": [tag],
        "RepoDigests": [],
        "Created": 0,
        "Size": 0,
        "SharedSize": -1,
        "Labels": {},
        "Containers": containers,
    }


def image_summaries(images: Iterable[object]) -> list[dict[str, Any]]:
    """``GET /images/json`` (and ``docker system df``'s images): one summary per image
    the containers' recorded ``images`` name, by name."""
    return [image_summary(tag, n) for tag, n in sorted(images_used(images).items())]


def image_document(name: str) -> dict[str, Any]:
    """``GET /images/{name}/json``: an image name, as a local image with no layers."""
    return {
        "Id": image_id(name),
        "RepoTags": [familiar_image(name)],
        "RepoDigests": [],
        "Created": "1970-01-01T00:00:00Z",
        "Config": {"Cmd": None, "Entrypoint": None, "Env": [], "WorkingDir": "", "Labels": None},
        "Architecture": "amd64",
        "Os": "linux",
        "Size": 0,
        "RootFS": {"Type": "layers", "Layers": []},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }
