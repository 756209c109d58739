"""The system and image endpoints: ping, version, info; images as host images; no registry.

chartd runs processes on the host, so there are no images
(:mod:`engine.dockerapi.images` says what is answered for one), and what
needs a registry or a build (pull, push, build, load, ...) is refused with a
message that says why.
"""

from __future__ import annotations

import platform
import socket

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from engine.api.hostinfo import cpu_count, mem_total
from engine.dockerapi import images
from engine.dockerapi.calls import blocking, daemon
from engine.dockerapi.versions import API_VERSION, MIN_API_VERSION
from engine.errors import NotImplemented as Unsupported

__all__ = ["NO_REGISTRY", "routes"]

NO_REGISTRY = (
    "chartd has no registry and no images: it runs commands on the host, so there is "
    "nothing to pull, push or build (any image name is accepted by create and recorded)"
)
"""The answer to every endpoint that would need a registry or an image store."""

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
_NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


async def ping(request: Request) -> Response:
    body = "" if request.method == "HEAD" else "OK"
    headers = {**_NO_CACHE, "Swarm": "inactive", "Builder-Version": ""}
    return PlainTextResponse(body, headers=headers)


def _versions(version: str) -> dict[str, str]:
    return {
        "Version": version,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _ARCH.get(platform.machine(), platform.machine()),
        "KernelVersion": platform.release(),
        "BuildTime": "",
    }


async def version(request: Request) -> Response:
    found = _versions(daemon(request).version)
    engine_details = {k: v for k, v in found.items() if k != "Version"}
    engine_details["Experimental"] = "false"
    return JSONResponse(
        {
            "Platform": {"Name": f"chartd {found['Version']}"},
            "Components": [
                {"Name": "Engine", "Version": found["Version"], "Details": engine_details}
            ],
            **found,
        }
    )


async def info(request: Request) -> Response:
    d = daemon(request)
    listed = await blocking(request, d.backend.list, all=True)
    states = [d.status_of(e.configuration, e.data) for e in listed]
    running = sum(s in ("running", "restarting") for s in states)
    paused = states.count("paused")
    return JSONResponse(
        {
            "ID": "",
            "Containers": len(states),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(states) - running - paused,
            "Images": len(images.images_used(e.data.get("image") for e in listed)),
            "Driver": "chartd",
            "DriverStatus": [],
            "Name": socket.gethostname(),
            "ServerVersion": d.version,
            "OperatingSystem": f"{platform.system()} (chartd: processes on the host)",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "KernelVersion": platform.release(),
            "NCPU": cpu_count(),
            "MemTotal": mem_total(),
            "LoggingDriver": "json-file",
            "CgroupDriver": "none",
            "DefaultRuntime": "chartd",
            "Runtimes": {"chartd": {"path": "chartd"}},
            "Swarm": {"LocalNodeState": "inactive"},
            "Plugins": {"Volume": [], "Network": [], "Authorization": None, "Log": ["json-file"]},
            "SecurityOptions": [],
            "Warnings": [],
        }
    )


async def _image(request: Request) -> str:
    """The image the path's ``name`` refers to (see :func:`images.find_image`)."""
    name: str = request.path_params["name"]
    if images.answers_alone(name):  # no listing of every container for a plain name
        return name
    d = daemon(request)
    listed = await blocking(request, d.backend.list, all=True)
    known = {str(e.data.get("image") or "") for e in listed} - {""}
    return images.find_image(name, known)


async def image_inspect(request: Request) -> Response:
    return JSONResponse(images.image_document(await _image(request)))


async def image_history(request: Request) -> Response:
    # One layer of nothing: an image here is a name, made by no build step.
    name = await _image(request)
    layer = {
        "Id": images.image_id(name),
        "Created": 0,
        "CreatedBy": "",
        "Tags": [images.familiar_image(name)],
        "Size": 0,
        "Comment": "",
    }
    return JSONResponse([layer])


async def image_list(request: Request) -> Response:
    d = daemon(request)
    listed = await blocking(request, d.backend.list, all=True)
    return JSONResponse(images.image_summaries(e.data.get("image") for e in listed))


async def no_registry(request: Request) -> Response:
    raise Unsupported(NO_REGISTRY)


def routes() -> list[Route]:
    """The routes of this module's endpoints."""
    return [
        Route("/_ping", ping, methods=["GET", "HEAD"]),
        Route("/version", version, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/images/json", image_list, methods=["GET"]),
        Route("/images/{name:path}/json", image_inspect, methods=["GET"]),
        Route("/images/{name:path}/history", image_history, methods=["GET"]),
        Route("/images/get", no_registry, methods=["GET"]),
        Route("/images/{name:path}/get", no_registry, methods=["GET"]),
        Route("/images/create", no_registry, methods=["POST"]),
        Route("/images/load", no_registry, methods=["POST"]),
        Route("/images/search", no_registry, methods=["GET"]),
        Route("/images/{name:path}/push", no_registry, methods=["POST"]),
        Route("/images/{name:path}/tag", no_registry, methods=["POST"]),
        Route("/images/{name:path}", no_registry, methods=["DELETE"]),
        Route("/build", no_registry, methods=["POST"]),
        Route("/commit", no_registry, methods=["POST"]),
    ]
