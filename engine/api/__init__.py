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
"""

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
