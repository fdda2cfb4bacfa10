"""SQLite state files (the alert store, the bot's question store): one way to open,
migrate and report them.

A store lists its schema as numbered migrations: ``migrations[0]`` creates version 1,
``migrations[1]`` turns it into version 2, and so on; each is a script of statements
separated by ';'. ``open_schema`` checks the file (SQLite's quick check), refuses a file
from a newer Newsdesk, and runs the migrations the file lacks in one write transaction,
recording the version in ``PRAGMA user_version``. SQLite's errors about a file (damaged,
not a database, unreadable) become ``StateFileError`` naming it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from index.errors import NewsdeskError

BUSY_TIMEOUT_S = 30.0


class StateFileError(NewsdeskError):
    """A SQLite state file that cannot be used: damaged, not a database, unreadable, or
    from a newer Newsdesk. ``path`` is the file; the message names it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class SchemaTooNewError(StateFileError):
    """The file was written by a newer Newsdesk (schema ``found`` > ``known``)."""

    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            path,
            f"The state file {path} has schema version {found}; this Newsdesk knows up to "
            f"{known}. Upgrade Newsdesk.",
        )
        self.found = found
        self.known = known


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


def connect(
    path: Path, *, synchronous: str = "FULL", check_same_thread: bool = True
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal."""
    conn = sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=check_same_thread,
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``): committed when the block ends, rolled
    back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Raise ``StateFileError`` unless SQLite's quick check finds the file sound."""
    problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        raise state_file_problem(path, sqlite3.DatabaseError("; ".join(problems)[:300]))


def migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[str]) -> int:
    """Run ``migrations[version:]`` and set ``PRAGMA user_version`` to their count; returns
    the version found. Call inside a write transaction. Raises ``SchemaTooNewError`` for a
    file newer than ``migrations``."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise SchemaTooNewError(path, version, len(migrations))
    steps = migrations[version:]
    for script in steps:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
    if steps:
        conn.execute(f"PRAGMA user_version = {len(migrations)}")
    return version


def open_schema(conn: sqlite3.Connection, path: Path, migrations: Sequence[str]) -> int:
    """Check the file and bring its schema up to date, in one write transaction; returns
    the version found. SQLite's errors become ``StateFileError`` naming ``path``."""
    with state_file_errors(path):
        check_integrity(conn, path)
        with transaction(conn):
            return migrate(conn, path, migrations)
