"""The state database: one small interface, two backends (a SQLite file, or PostgreSQL).

The bot's state (questions behind "More sources" buttons, subscriptions, the alert outbox
and its cursor, shared rate limits) lives in a ``Database``. By default that is a SQLite
file per store in the data folder (WAL journal), nothing to install; with a
``postgresql://`` URL every store of every instance shares one PostgreSQL database
(psycopg 3 and a connection pool, imported only then: ``pip install 'newsdesk[postgres]'``).

What a store sees is the same on both:

* ``read()`` / ``write()``: a connection whose ``execute(sql, args)`` takes ``?``
  placeholders in both dialects; ``write()`` is one transaction (SQLite ``BEGIN
  IMMEDIATE``, which serialises writers; PostgreSQL a transaction on a pooled connection),
  rolled back on error. Inside one, ``conn.lock(name)`` serialises writers on ``name``
  (PostgreSQL ``pg_advisory_xact_lock``; nothing to do on SQLite, whose writers are serial).
* ``migrate(store, migrations)``: numbered migrations (``migrations[0]`` creates version
  1, ...), run in one transaction, the version recorded in the database: SQLite's ``PRAGMA
  user_version`` (one store per file, as the files have always been), PostgreSQL's table
  ``newsdesk_schema(store, version)`` under an advisory lock so that instances starting
  together migrate once. A ``Database`` migrates a store once (later calls with the same
  migrations return at once). A migration is one script for both dialects or a mapping
  ``{"sqlite": ..., "postgres": ...}`` (their DDL differs: BIGINT chat ids, identity
  columns, DOUBLE PRECISION). A database newer than the code is refused
  (``SchemaTooNewError``).
* ``try_lock(name)``: an exclusive lock that does not wait, across processes (and, on
  PostgreSQL, machines): ``pg_try_advisory_lock`` on a dedicated connection held for the
  block; on SQLite an ``flock`` on a file beside the database.

Errors: a SQLite file that cannot be used is a ``StateFileError`` naming it; a PostgreSQL
that cannot be reached or refuses us is a ``StateDatabaseError`` naming the URL without its
password (``label``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from index.errors import NewsdeskError

BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
#: libpq's TCP keepalives for every PostgreSQL connection (unless the URL sets them): a
#: connection idle for hours (``try_lock``'s, held through a re-index) whose peer is gone
#: is noticed within about a minute instead of the system's two hours.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
POSTGRES_EXTRA = "pip install 'newsdesk[postgres]'"

SQLITE, POSTGRES = "sqlite", "postgres"
Migration = str | Mapping[str, str]


# ---- errors ---------------------------------------------------------------------------------


class StateError(NewsdeskError):
    """State that cannot be used. ``where``: the SQLite file, or the PostgreSQL URL without
    its password; the message names it."""

    def __init__(self, where: Path | str, message: str) -> None:
        super().__init__(message)
        self.where = where


class StateFileError(StateError):
    """A SQLite state file that cannot be used: damaged, not a database, unreadable.
    ``path`` is the file; the message names it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(path, message)
        self.path = path


class StateDatabaseError(StateError):
    """A PostgreSQL state database that cannot be reached, refuses us, or fails. ``url`` is
    its URL without the password; the message names it and never holds the password."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(url, message)
        self.url = url


class SchemaTooNewError(StateError):
    """The state was written by a newer Newsdesk (schema ``found`` > ``known``)."""

    def __init__(self, where: Path | str, found: int, known: int, *, store: str = "") -> None:
        what = f"The state file {where}" if isinstance(where, Path) else f"The database {where}"
        of = f" for {store}" if store and not isinstance(where, Path) else ""
        super().__init__(
            where,
            f"{what} has schema version {found}{of}; this Newsdesk knows up to {known}. "
            "Upgrade Newsdesk.",
        )
        self.found = found
        self.known = known


class StateFileTooNewError(SchemaTooNewError, StateFileError):
    """A SQLite state file written by a newer Newsdesk: both a ``SchemaTooNewError`` and a
    ``StateFileError`` (``path``: the file)."""


# ---- what a store uses ----------------------------------------------------------------------


class Rows(Protocol):
    """The cursor ``execute`` returns (sqlite3's or psycopg's)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(ABC):
    """A connection handed out by ``Database.read()`` / ``write()``."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        """Run one statement; ``?`` placeholders in both dialects."""

    @abstractmethod
    def lock(self, name: str) -> None:
        """Inside ``write()``: wait for and hold an exclusive lock on ``name`` until the
        transaction ends (writers of the same thing one at a time)."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (same on every machine)."""
    digest = hashlib.sha256(f"newsdesk:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _is_password(param: str) -> bool:
    """Whether a ``key=value`` of a URL's query is libpq's ``password`` (keys may be
    percent-encoded too)."""
    key, eq, _ = param.partition("=")
    return bool(eq) and unquote(key) == "password"


def redact_url(url: str) -> str:
    """``url`` without its password (what messages and logs may show): the one of
    ``user:password@`` and a ``password`` query parameter, which libpq also accepts. The
    rest stays as written (a port that is not a number too: the caller refuses it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(a URL that cannot be read)"
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostinfo}"
    params = parts.query.split("&")
    query = "&".join(
        f"{param.partition('=')[0]}=***" if _is_password(param) else param for param in params
    )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """What of ``url`` no message may show: its passwords (``user:password@`` and a
    ``password`` query parameter) as written and percent-decoded, longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: set[str] = set()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    found.update(p.partition("=")[2] for p in parts.query.split("&") if _is_password(p))
    found |= {unquote(secret) for secret in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def _script(migration: Migration, dialect: str) -> str:
    if isinstance(migration, str):
        return migration
    return migration[dialect]


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


class Database(ABC):
    """Where the state lives. ``dialect``: "sqlite" or "postgres"; ``label``: what messages
    name (the file, or the URL without its password)."""

    dialect: str
    label: str
    _migrated: dict[str, int]  # store -> the version this object brought it up to

    @abstractmethod
    def read(self) -> AbstractContextManager[Connection]:
        """A connection for reads (each statement sees committed data)."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Connection]:
        """One transaction: committed when the block ends, rolled back on error."""

    def migrate(self, store: str, migrations: Sequence[Migration]) -> int:
        """Bring ``store``'s schema up to ``len(migrations)`` in one write transaction;
        returns the version found. Once this object has done so it does not look again
        (every ``DatabaseSourceList`` of a process migrates its store): it returns
        ``len(migrations)`` at once."""
        known = len(migrations)
        if self._migrated.get(store) == known:
            return known
        with self.write() as conn:
            version = self._version_to_migrate(conn, store, known)
            steps = migrations[version:]
            for migration in steps:
                for statement in _statements(_script(migration, self.dialect)):
                    conn.execute(statement)
            if steps:
                self._record_version(conn, store, known)
        self._migrated[store] = known
        return version

    @abstractmethod
    def _version_to_migrate(self, conn: Connection, store: str, known: int) -> int:
        """Inside the migration's transaction: the version recorded for ``store`` (checked:
        a schema newer than ``known`` is refused)."""

    @abstractmethod
    def _record_version(self, conn: Connection, store: str, version: int) -> None:
        """Inside the migration's transaction: record ``store``'s new version."""

    @abstractmethod
    def schema_version(self, store: str) -> int:
        """The version of ``store``'s schema recorded in the database (0: none)."""

    @abstractmethod
    def try_lock(self, name: str) -> AbstractContextManager[bool]:
        """Hold the exclusive lock ``name`` for the block if no one holds it: yields True,
        or False at once (without waiting) when another process holds it."""

    def close(self) -> None:  # noqa: B027 (a SQLite file holds nothing open)
        """Release what the database holds open (the pool)."""

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"


# ---- SQLite -----------------------------------------------------------------------------------


def state_file_problem(path: Path, exc: sqlite3.Error) -> StateFileError:
    """Our error for SQLite's, naming the file (SQLite's own messages never do)."""
    text = str(exc)
    if any(word in text.lower() for word in ("not a database", "malformed", "corrupt")):
        return StateFileError(
            path,
            f"The state file {path} is damaged ({text}). Stop the bot, move the file "
            "aside (a new one is created at start; what it held is lost) or restore it "
            "from a backup.",
        )
    return StateFileError(path, f"The state file {path} cannot be used: {text}.")


@contextmanager
def state_file_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's errors about the file (not a bug of ours, e.g. a constraint) into
    ``StateFileError`` naming it."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
        raise
    except sqlite3.DatabaseError as exc:
        raise state_file_problem(path, exc) from exc


class _SqliteConnection(Connection):
    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        return self.raw.execute(sql, tuple(args))

    def lock(self, name: str) -> None:
        del name  # BEGIN IMMEDIATE: one writer at a time already


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (it stays so). Switching needs the file to itself, and
    SQLite reports "database is locked" at once, without its busy wait, when another
    connection opens the new file at the same moment: so look first, and retry the switch
    until ``BUSY_TIMEOUT_S``."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SqliteDatabase(Database):
    """A SQLite file in WAL mode. Each ``read()``/``write()`` opens its own short-lived
    connection, so one object may be shared by threads and the file by processes; writers
    take ``BEGIN IMMEDIATE`` and wait (``busy_timeout``) for each other. One store per file
    (its version is the file's ``PRAGMA user_version``)."""

    dialect = SQLITE

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA: {synchronous}")
        self.path = Path(path)
        self.label = str(self.path)
        self.synchronous = synchronous.upper()
        self._store: str | None = None
        self._migrated: dict[str, int] = {}

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            _use_wal(conn)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with state_file_errors(self.path):
            conn = self._connect()
            try:
                yield _SqliteConnection(conn)
            finally:
                conn.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.read() as conn:
            raw = conn.raw  # type: ignore[attr-defined]
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")

    def journal_mode(self) -> str:
        with self.read() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0])

    def _claim_store(self, store: str) -> None:
        if self._store not in (None, store):
            raise ValueError(
                f"{self.path} holds the {self._store} store; a SQLite file holds one store "
                f"(give {store} a file of its own)"
            )
        self._store = store

    def migrate(self, store: str, migrations: Sequence[Migration]) -> int:
        """As ``Database.migrate``, after checking the file holds no other store; the file
        is checked (SQLite's quick check) and the version kept in ``PRAGMA user_version``."""
        self._claim_store(store)
        return super().migrate(store, migrations)

    def _version_to_migrate(self, conn: Connection, store: str, known: int) -> int:
        problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise state_file_problem(self.path, sqlite3.DatabaseError("; ".join(problems)[:300]))
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > known:
            raise StateFileTooNewError(self.path, version, known, store=store)
        return version

    def _record_version(self, conn: Connection, store: str, version: int) -> None:
        conn.execute(f"PRAGMA user_version = {int(version)}")

    def schema_version(self, store: str) -> int:
        self._claim_store(store)
        with self.read() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """An ``flock`` on ``<file>.<name>.lock`` beside the database, removed when the
        block ends (so that locks named per index version do not pile up)."""
        safe = re.sub(r"[^\w.-]", "_", name)
        lock_path = self.path.with_name(f"{self.path.name}.{safe}.lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fh = lock_path.open("a+")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                fh.close()
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                yield False
                return
            # the holder before us may have removed the file between our open and our
            # lock: then we hold a lock on nothing, and try again on the new file
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        try:
            yield True
        finally:
            lock_path.unlink(missing_ok=True)  # while still held: no one locks a stale file
            fh.close()


# ---- PostgreSQL -------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def to_format_style(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


_SCHEMA_TABLE = (
    "CREATE TABLE IF NOT EXISTS newsdesk_schema (store TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class _PostgresConnection(Connection):
    dialect = POSTGRES

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    def execute(self, sql: str, args: Sequence[object] = ()) -> Rows:
        cursor: Rows = self.raw.execute(to_format_style(sql), tuple(args))
        return cursor

    def lock(self, name: str) -> None:
        self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))


class PostgresDatabase(Database):
    """A PostgreSQL database reached through a psycopg connection pool (``pool_size``
    connections at most, autocommit outside ``write()``)."""

    dialect = POSTGRES

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.url = url
        self.label = redact_url(url)
        self._secrets = url_secrets(url)
        self._migrated: dict[str, int] = {}
        try:
            import psycopg
            import psycopg_pool
            from psycopg.conninfo import conninfo_to_dict
        except ImportError as exc:
            raise StateDatabaseError(
                self.label,
                f"The state database {self.label} is PostgreSQL, which needs psycopg: "
                f"{POSTGRES_EXTRA}",
            ) from exc
        self._psycopg = psycopg
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StateDatabaseError(
                self.label,
                f"The state database URL {self.label} cannot be read: {self._scrub(str(exc))}",
            ) from None
        ports = str(params.get("port") or "")
        if not all(port.isdigit() for port in ports.split(",") if port):
            raise StateDatabaseError(
                self.label,
                f"The state database URL {self.label} has a port that is not a number: {ports!r}",
            )
        self._connect_kwargs: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            **{key: value for key, value in KEEPALIVES.items() if key not in params},
        }
        # One direct connection first: its error says why (wrong password, no server),
        # where a pool would only time out.
        with self._errors():
            psycopg.connect(url, **self._connect_kwargs).close()
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True, **self._connect_kwargs},
            timeout=BUSY_TIMEOUT_S,
            open=False,
            name="newsdesk-state",
        )
        try:
            with self._errors():
                self._pool.open(wait=True, timeout=BUSY_TIMEOUT_S)
        except BaseException:
            self._pool.close()  # its worker threads, which would go on trying
            raise

    def _scrub(self, text: str) -> str:
        if self.url:
            text = text.replace(self.url, self.label)  # libpq quotes a URL it cannot read
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """psycopg's errors about reaching the server (the pool's timeout among them) as
        ``StateDatabaseError``, without the password; a bug of ours (bad SQL, a
        constraint) stays psycopg's."""
        psycopg = self._psycopg
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            why = self._scrub(" ".join(str(exc).split()))
            raise StateDatabaseError(
                self.label, f"The state database {self.label} cannot be used: {why}"
            ) from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._errors(), self._pool.connection() as conn:
            yield _PostgresConnection(conn)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._errors(), self._pool.connection() as conn, conn.transaction():
            yield _PostgresConnection(conn)

    def _version_to_migrate(self, conn: Connection, store: str, known: int) -> int:
        # Under an advisory lock: of several instances starting together, one migrates and
        # the others then find the schema up to date.
        conn.lock("newsdesk_schema")
        conn.execute(_SCHEMA_TABLE)
        row = conn.execute(
            "SELECT version FROM newsdesk_schema WHERE store = ?", (store,)
        ).fetchone()
        version = int(row[0]) if row else 0
        if version > known:
            raise SchemaTooNewError(self.label, version, known, store=store)
        return version

    def _record_version(self, conn: Connection, store: str, version: int) -> None:
        conn.execute(
            "INSERT INTO newsdesk_schema (store, version) VALUES (?, ?) "
            "ON CONFLICT (store) DO UPDATE SET version = excluded.version",
            (store, version),
        )

    def schema_version(self, store: str) -> int:
        with self.read() as conn:
            exists = conn.execute("SELECT to_regclass('newsdesk_schema')").fetchone()[0]
            if exists is None:
                return 0
            row = conn.execute(
                "SELECT version FROM newsdesk_schema WHERE store = ?", (store,)
            ).fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """``pg_try_advisory_lock`` on a connection of its own, held for the block (a
        session lock: a process that dies lets it go with its connection)."""
        key = lock_key(name)
        with self._errors():
            conn = self._psycopg.connect(self.url, autocommit=True, **self._connect_kwargs)
        try:
            with self._errors():
                got = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
            yield got
        finally:
            conn.close()  # ends the session, and with it the lock

    def close(self) -> None:
        self._pool.close()


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_database(
    url: str | None,
    sqlite_path: Path,
    pool_size: int = 4,
    *,
    synchronous: str = "FULL",
) -> Database:
    """The state database: PostgreSQL when ``url`` is a ``postgresql://`` URL, else the
    SQLite file ``sqlite_path``."""
    if not url:
        return SqliteDatabase(sqlite_path, synchronous=synchronous)
    if not is_postgres_url(url):
        raise StateDatabaseError(
            redact_url(url),
            f"The state database URL {redact_url(url)} is not a postgresql:// URL "
            "(leave it unset to keep the state in SQLite files in the data folder).",
        )
    return PostgresDatabase(url, pool_size)
