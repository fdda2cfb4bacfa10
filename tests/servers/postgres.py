"""A PostgreSQL cluster for the tests, and the state ``database`` over both backends.

The cluster (PostgreSQL 15, ``/usr/lib/postgresql/15/bin`` or ``$NEWSDESK_PG_BIN``) is made
with ``initdb`` in a temporary folder the first time a test asks for it, listens on
127.0.0.1 at a free port and on a unix socket in that folder, runs as the ``postgres`` OS
user when the tests run as root (PostgreSQL refuses root), and is stopped and removed at
the end of the session. Loopback is trusted, except for the role ``PASSWORD_ROLE``, which
must give its password (``PASSWORD``): the tests of a refused login use it.

Fixtures:

* ``postgres_server`` (session): the running cluster (``url``, ``port``, ``socket_dir``).
* ``postgres_url`` (session): a URL to its database "postgres".
* ``pg_database_url``: a database created for the test and dropped after it, so tests
  never see each other's rows.
* ``database_backend``: "sqlite" then "postgres" (parametrised); ``make_database(name)``:
  a state ``Database`` on that backend (SQLite: a file ``<name>.sqlite3`` of the test's
  own; PostgreSQL: the test's database, shared by every name), closed after the test;
  ``database``: ``make_database("state")``. Only PostgreSQL tests start the cluster.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from index.database import Database, open_database
from tests.servers import free_port, unavailable

PG_BIN = Path(os.environ.get("NEWSDESK_PG_BIN", "/usr/lib/postgresql/15/bin"))
PASSWORD_ROLE = "newsdesk_pw"
PASSWORD = "right-horse-battery"
BACKENDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class PostgresServer:
    root: Path
    port: int
    socket_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"


def _as_postgres() -> tuple[list[str], int | None, int | None]:
    """The command prefix, uid and gid to run the server's programs with."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("tests run as root and there is no 'postgres' OS user to run PostgreSQL")
        raise AssertionError("unreachable") from None
    return ["runuser", "-u", "postgres", "--"], user.pw_uid, user.pw_gid


def _run(cmd: list[str], prefix: list[str], what: str) -> None:
    done = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr or done.stdout}")


def _start(root: Path, prefix: list[str]) -> PostgresServer:
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if prefix:
        for path in (root, sockets):
            shutil.chown(path, "postgres", "postgres")
    _run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ],
        prefix,
        "initdb",
    )
    hba = (
        "local all all trust\n"
        f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
        "host all all 127.0.0.1/32 trust\n"
    )
    (data / "pg_hba.conf").write_text(hba, encoding="utf-8")
    port = free_port()
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
        "-c shared_buffers=32MB"
    )
    _run(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        prefix,
        "pg_ctl start",
    )
    server = PostgresServer(root, port, sockets)
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
    return server


@contextlib.contextmanager
def throwaway_cluster(prefix: str = "newsdesk-pg-") -> Iterator[PostgresServer]:
    """A cluster in a new temporary folder, stopped and removed when the block ends (the
    tests' session cluster, and ``scripts/load_bot.py --postgres``). Raises
    ``ClusterError`` (with the server's log) when it cannot start."""
    run_as, _, _ = _as_postgres()
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        try:
            server = _start(root, run_as)
        except Exception as exc:
            log = root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ClusterError(f"could not start a PostgreSQL cluster: {exc} {tail}") from exc
        yield server
    finally:
        subprocess.run(
            [*run_as, str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


class ClusterError(RuntimeError):
    """A throwaway cluster that did not start; the message holds the end of its log."""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL is not installed ({PG_BIN}/initdb not found)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'newsdesk[postgres]')")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(throwaway_cluster())
        except ClusterError as exc:
            unavailable(str(exc))
            raise
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url


@pytest.fixture
def pg_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"GRANT ALL ON DATABASE {name} TO {PASSWORD_ROLE}")
    try:
        yield postgres_server.url_for(name)
    finally:
        for _ in range(3):
            try:
                with psycopg.connect(postgres_server.url, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                break
            except psycopg.OperationalError:
                time.sleep(0.5)


@pytest.fixture(params=BACKENDS)
def database_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


DatabaseMaker = Callable[..., Database]


@pytest.fixture
def make_database(
    database_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[DatabaseMaker]:
    """``make_database(name="state", pool_size=4)``: a new ``Database`` object on the
    test's backend (several calls: several clients of the same PostgreSQL database; of
    one SQLite file per name)."""
    url = request.getfixturevalue("pg_database_url") if database_backend == "postgres" else None
    opened: list[Database] = []

    def make(name: str = "state", pool_size: int = 4) -> Database:
        db = open_database(url, tmp_path / f"{name}.sqlite3", pool_size)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


def count_writes(database: Database, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """From now on, count the write transactions ``database`` opens; returns the reader."""
    count = 0
    real_write = database.write

    def write() -> Any:
        nonlocal count
        count += 1
        return real_write()

    monkeypatch.setattr(database, "write", write)
    return lambda: count


@pytest.fixture
def database(make_database: DatabaseMaker) -> Database:
    """A state ``Database`` on each backend in turn."""
    return make_database()
