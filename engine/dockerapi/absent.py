"""What chartd has none of: a container's own filesystem, volumes, networks, a build
cache, plugins, a swarm.

A chartd container is a process on the host, in the host's filesystem and
network namespace. The endpoints that read or change what docker keeps for
those answer as a daemon that has none of them: listings are empty, a named
volume or network is not found (moby's own messages), prunes remove
nothing, and what would have to make one (a volume, a network) or read a
container's filesystem (``docker diff``, ``export``, ``cp``) is refused as
not implemented, with a message that says why, once the container is found
(an unknown one is moby's 404 first). ``docker system df`` and ``docker
system prune`` then work as they do on a daemon that never pulled an image.
chartd is never part of a swarm: the swarm's endpoints answer as moby's do
on a node that has not joined one (503), and joining or making one is
refused.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.dockerapi import images, shapes
from engine.dockerapi.calls import blocking, daemon, ref
from engine.errors import NotFound, Unavailable
from engine.errors import NotImplemented as Unsupported

__all__ = ["NO_FILESYSTEM", "NO_NETWORKS", "NO_PLUGINS", "NO_SWARM", "NO_VOLUMES", "routes"]

NO_FILESYSTEM = (
    "chartd containers have no filesystem of their own: they run in the host's, so there "
    "is no container filesystem to {what}"
)
"""The answer to diff, export and cp, with what was asked (``{what}``)."""

NO_VOLUMES = "chartd makes no volumes: a container runs in the host's filesystem"
"""The answer to a volume's creation."""

NO_NETWORKS = "chartd makes no networks: a container runs in the host's network namespace"
"""The answer to a network's creation or a container's connection to one."""


NO_PLUGINS = "chartd runs no plugins"
"""The answer to a plugin's installation or creation."""

NO_SWARM = "chartd is a single node and runs no swarm: it cannot make or join one"
"""The answer to ``docker swarm init`` and ``join``."""

# moby's answers on a node that is in no swarm (its cluster package's, 503).
_NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
_NOT_IN_A_SWARM = "This node is not part of a swarm"


async def _no_filesystem(request: Request, what: str) -> Response:
    # The container first: docker's answer for one that does not exist is its 404.
    await blocking(request, daemon(request).backend.get, ref(request))
    raise Unsupported(NO_FILESYSTEM.format(what=what))


async def changes(request: Request) -> Response:
    return await _no_filesystem(request, "diff")


async def export(request: Request) -> Response:
    return await _no_filesystem(request, "export")


async def archive(request: Request) -> Response:
    return await _no_filesystem(request, "copy from or to")


async def volume_list(request: Request) -> Response:
    return JSONResponse({"Volumes": [], "Warnings": None})


async def volume_missing(request: Request) -> Response:
    # moby's volume service: the operation, the name, then what went wrong.
    raise NotFound(f"get {request.path_params['name']}: no such volume")


async def volume_create(request: Request) -> Response:
    raise Unsupported(NO_VOLUMES)


async def volume_prune(request: Request) -> Response:
    return JSONResponse({"VolumesDeleted": None, "SpaceReclaimed": 0})


async def network_list(request: Request) -> Response:
    return JSONResponse([])


async def network_missing(request: Request) -> Response:
    raise NotFound(f"network {request.path_params['name']} not found")


async def network_create(request: Request) -> Response:
    raise Unsupported(NO_NETWORKS)


async def network_prune(request: Request) -> Response:
    return JSONResponse({"NetworksDeleted": None})


async def image_prune(request: Request) -> Response:
    # Nothing is pulled, so nothing dangles: an image here is only a name containers use.
    return JSONResponse({"ImagesDeleted": None, "SpaceReclaimed": 0})


async def build_prune(request: Request) -> Response:
    return JSONResponse({"CachesDeleted": None, "SpaceReclaimed": 0})


async def plugin_list(request: Request) -> Response:
    return JSONResponse([])


async def plugin_missing(request: Request) -> Response:
    raise NotFound(f'plugin "{request.path_params["name"]}" not found')


async def plugin_refused(request: Request) -> Response:
    raise Unsupported(NO_PLUGINS)


async def swarm_refused(request: Request) -> Response:
    raise Unsupported(NO_SWARM)


async def swarm_leave(request: Request) -> Response:
    raise Unavailable(_NOT_IN_A_SWARM)


async def not_a_manager(request: Request) -> Response:
    raise Unavailable(_NOT_A_MANAGER)


async def disk_usage(request: Request) -> Response:
    """``docker system df``: the containers and the images they name, all of size 0."""
    d = daemon(request)
    listed = await blocking(request, d.backend.list, all=True)
    containers = []
    for e in listed:
        item = shapes.summary(e, d.status_of, health=d.backend.health_of(e) or "none")
        item.update(SizeRw=0, SizeRootFs=0)
        containers.append(item)
    return JSONResponse(
        {
            "LayersSize": 0,
            "Images": images.image_summaries(e.data.get("image") for e in listed),
            "Containers": containers,
            "Volumes": [],
            "BuildCache": [],
        }
    )


def routes() -> list[Route]:
    """The routes of this module."""
    c = "/containers/{ref}"
    return [
        Route(f"{c}/changes", changes, methods=["GET"]),
        Route(f"{c}/export", export, methods=["GET"]),
        Route(f"{c}/archive", archive, methods=["GET", "HEAD", "PUT"]),
        Route("/volumes", volume_list, methods=["GET"]),
        Route("/volumes/create", volume_create, methods=["POST"]),
        Route("/volumes/prune", volume_prune, methods=["POST"]),
        Route("/volumes/{name:path}", volume_missing, methods=["GET", "PUT", "DELETE"]),
        Route("/networks", network_list, methods=["GET"]),
        Route("/networks/create", network_create, methods=["POST"]),
        Route("/networks/prune", network_prune, methods=["POST"]),
        Route("/networks/{name}/connect", network_missing, methods=["POST"]),
        Route("/networks/{name}/disconnect", network_missing, methods=["POST"]),
        Route("/networks/{name:path}", network_missing, methods=["GET", "DELETE"]),
        Route("/images/prune", image_prune, methods=["POST"]),
        Route("/build/prune", build_prune, methods=["POST"]),
        Route("/system/df", disk_usage, methods=["GET"]),
        Route("/plugins", plugin_list, methods=["GET"]),
        Route("/plugins/privileges", plugin_refused, methods=["GET"]),
        Route("/plugins/pull", plugin_refused, methods=["POST"]),
        Route("/plugins/create", plugin_refused, methods=["POST"]),
        Route("/plugins/{name:path}/json", plugin_missing, methods=["GET"]),
        Route("/plugins/{name:path}/{verb}", plugin_missing, methods=["POST"]),
        Route("/plugins/{name:path}", plugin_missing, methods=["DELETE"]),
        Route("/swarm/init", swarm_refused, methods=["POST"]),
        Route("/swarm/join", swarm_refused, methods=["POST"]),
        Route("/swarm/leave", swarm_leave, methods=["POST"]),
        *(
            Route(path, not_a_manager, methods=["GET", "POST", "DELETE"])
            for top in ("swarm", "services", "nodes", "tasks", "secrets", "configs")
            for path in (f"/{top}", f"/{top}/{{rest:path}}")
        ),
    ]
