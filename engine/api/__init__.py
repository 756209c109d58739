"""chartd's gRPC API (package ``chartd.v1``): the protos, their code, servicers, the error map.

Rooms inside:

* ``chartd/v1/*.proto`` and the code ``tools/gen_proto.py`` generates beside them;
* :mod:`engine.api.status`: the one table from error categories to status
  codes, with the category carried as a ``google.rpc.ErrorInfo`` reason;
* :mod:`engine.api.engine_service` and :mod:`engine.api.containers_service`:
  thin servicers; :mod:`engine.api.server`: them plus health and reflection;
* :mod:`engine.api.admission`: which calls are taken on (clients gone,
  quotas per kind of call); :mod:`engine.api.paging`: listings in pages that
  fit in a response; :mod:`engine.api.tls`: TLS and mutual TLS credentials;
* :mod:`engine.api.client`: a channel and stubs, for the CLI and other clients.

The API depends inward only (the public ``engine`` API and ``engine.errors``);
the daemon's composition root (:mod:`engine.daemon`) hands it the container
service.

The names below are imported on first use (:mod:`engine._lazy`), so that a client
(:mod:`engine.api.client`) loads neither the servicers nor the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine._lazy import lazy_exports

if TYPE_CHECKING:
    from engine.api.address import Address, default_host, default_state_dir, parse_address
    from engine.api.client import Client
    from engine.api.server import SERVICES, ApiServer
    from engine.api.status import DOMAIN, Failure, describe, to_error, to_status

__all__ = [
    "DOMAIN",
    "SERVICES",
    "Address",
    "ApiServer",
    "Client",
    "Failure",
    "default_host",
    "default_state_dir",
    "describe",
    "parse_address",
    "to_error",
    "to_status",
]

# Where each name lives: imported on first use, so that a client (engine.api.client)
# does not load the servicers, and through them the engine.
_HOMES = {
    **dict.fromkeys(
        ("Address", "default_host", "default_state_dir", "parse_address"), "engine.api.address"
    ),
    "Client": "engine.api.client",
    **dict.fromkeys(("SERVICES", "ApiServer"), "engine.api.server"),
    **dict.fromkeys(
        ("DOMAIN", "Failure", "describe", "to_error", "to_status"), "engine.api.status"
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
