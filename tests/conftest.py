"""Test configuration: Hypothesis profiles, missing prerequisites, the store tests' databases.

``HYPOTHESIS_PROFILE=ci`` (set by ``.ci/run``) runs more examples with a
deadline the 2-core CI machine meets; ``dev`` (the default) is quicker.

A test that needs something of the machine (PostgreSQL, Node.js and npm,
Graphviz, openssl, Linux pidfds, a cgroup v2 freezer) is skipped without
it, except under CI (env ``CI`` set, as ``.ci/run`` sets it), where it
fails: CI installs or sets up all of them, so a skip there would hide a
test that never ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

# CI's deadline catches an example gone pathological, not a slow moment: on two shared
# cores a 500 ms deadline was once missed by a 930 ms example that passed when replayed.
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=timedelta(milliseconds=2000),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=60, deadline=timedelta(milliseconds=500))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# -- prerequisites ---------------------------------------------------------------------


class Prerequisites:
    """What tests need of the machine: a missing one skips the test, or fails it under CI."""

    def missing(self, reason: str) -> NoReturn:
        """Skip the test for ``reason``; under CI, fail it."""
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test (.ci/run sets it up)", pytrace=False)
        pytest.skip(reason)

    def command(self, name: str, package: str) -> str:
        """The path of the command ``name``, which Debian's ``package`` installs."""
        found = shutil.which(name)
        if found is None:
            self.missing(f"needs the {name} command (apt-get install {package})")
        return found


@pytest.fixture(scope="session")
def prerequisites() -> Prerequisites:
    """See :class:`Prerequisites`."""
    return Prerequisites()


@pytest.fixture(scope="session")
def graphviz(prerequisites: Prerequisites) -> str:
    """Graphviz's ``dot``, which renders the SVG export."""
    return prerequisites.command("dot", "graphviz")


# -- databases -------------------------------------------------------------------------
#
# Store tests run against every backend chartd supports (one conformance suite, the
# way containerd runs one snapshotter suite against each snapshotter). PostgreSQL is
# reached through CHARTD_TEST_PG_URL, the URL of a database to administer from (the
# default is the local server's `postgres` database, as `.ci/run` sets it up). A
# session creates its own database there and drops it at the end; every test gets
# that database empty. Without a reachable server the PostgreSQL cases are skipped,
# except under CI, where they fail (Prerequisites): CI must test PostgreSQL.

PG_ADMIN_URL = os.environ.get(
    "CHARTD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


class PostgresServer:
    """An administrative connection to the test server, and the session's database."""

    def __init__(self, admin_url: str) -> None:
        url = sa.make_url(admin_url)
        self._admin_url = url
        # psycopg wants a libpq URL: the same one without SQLAlchemy's "+driver".
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.admin = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        self.database = f"chartd_test_{uuid.uuid4().hex[:12]}"
        self.admin.execute(f'CREATE DATABASE "{self.database}"')
        self.url = url.set(drivername="postgresql+psycopg", database=self.database)

    def terminate(self) -> int:
        """Kill every connection to the session's database; how many there were."""
        row = self.admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.database,),
        ).fetchone()
        return int(row[0]) if row else 0

    def empty(self) -> None:
        """Drop everything in the session's database (connections left open included)."""
        self.terminate()
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def close(self) -> None:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.admin.close()


@pytest.fixture(scope="session")
def pg_server(prerequisites: Prerequisites) -> Iterator[PostgresServer]:
    """The PostgreSQL server under test, with a database of this session's own."""
    try:
        server = PostgresServer(PG_ADMIN_URL)
    except psycopg.Error as exc:
        where = sa.make_url(PG_ADMIN_URL).render_as_string(hide_password=True)
        why = " ".join(str(exc).split())
        prerequisites.missing(f"PostgreSQL is not reachable at {where} (CHARTD_TEST_PG_URL): {why}")
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL of an empty PostgreSQL database, for this test alone."""
    pg_server.empty()
    return pg_server.url.render_as_string(hide_password=False)


def _backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite-memory":
        return "sqlite://"
    if backend == "sqlite-file":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return f"sqlite:///{tmp_path / 'chartd.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each backend (an in-memory one is private to one store)."""
    return _backend_url(request.param, request)


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_store_url(request: pytest.FixtureRequest) -> str:
    """An empty database that several stores (or processes) can open at once."""
    return _backend_url(request.param, request)


# -- tests that need a fresh interpreter ------------------------------------------------

_OWN_PROCESS = "CHARTD_TEST_OWN_PROCESS"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``own_process`` test in a fresh interpreter when pytest-xdist runs the suite.

    The kit's planted-bug tests assert that Hypothesis shrinks each bug to a
    short example, the same one every run (derandomized). Alone, or in one
    process running the whole suite, they do; on an xdist worker that ran
    hundreds of other tests first, one of them was shrunk to a local minimum
    in every CI run (a state left in the process steers the search; not
    found). A child interpreter gives each such test the start it has alone.
    """
    if (
        pyfuncitem.get_closest_marker("own_process") is None
        or "PYTEST_XDIST_WORKER" not in os.environ
        or os.environ.get(_OWN_PROCESS)
    ):
        return None
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            pyfuncitem.nodeid,
        ],
        check=False,
        cwd=pyfuncitem.config.rootpath,
        env={**os.environ, _OWN_PROCESS: "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if child.returncode != 0:
        pytest.fail(f"in a process of its own:\n{child.stdout}\n{child.stderr}", pytrace=False)
    return True
