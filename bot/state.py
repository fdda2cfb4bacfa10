"""Questions behind "More sources" buttons, in the state database, so buttons survive a
restart and work on any instance.

Callback data is limited to 64 bytes, so a button carries a short key; the question
text (and the passage the answer quoted) are kept here, keyed by a hash of them and of the
chat that asked. A key works only in that chat: elsewhere it is "expired", so a key cannot
be used to find out whether some question was asked.

By default the SQLite file ``<data_dir>/bot_state.sqlite3``; with PostgreSQL configured,
the shared state database, so that a button pressed on another instance's answer works
(``index.database``). The schema is numbered migrations run by ``Database.migrate``; a
damaged file raises ``StateFileError`` naming it.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from index.database import Database, SqliteDatabase

STORE = "questions"
_MIGRATIONS = (
    # 1: the questions (created with IF NOT EXISTS: files from before numbering have it)
    {
        "sqlite": """
        CREATE TABLE IF NOT EXISTS questions (
            key TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            doc_id TEXT,
            start INTEGER,
            created REAL NOT NULL
        )
        """,
        "postgres": """
        CREATE TABLE questions (
            key TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            doc_id TEXT,
            start INTEGER,
            created DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX questions_created ON questions (created)
        """,
    },
    # 2: the chat a key belongs to; keys from before it belong to none, and so expire
    {
        "sqlite": "ALTER TABLE questions ADD COLUMN chat_id INTEGER",
        "postgres": "ALTER TABLE questions ADD COLUMN chat_id BIGINT",
    },
)
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass(frozen=True, slots=True)
class StoredQuestion:
    key: str
    question: str
    quoted: tuple[str, int] | None  # (doc_id, passage start) of the quoted passage


def question_key(question: str, quoted: tuple[str, int] | None, chat_id: int) -> str:
    raw = f"{chat_id}\x00{question}"
    if quoted:
        raw += f"\x00{quoted[0]}\x00{quoted[1]}"
    digest = hashlib.sha256(raw.encode("utf-8")).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode("ascii")  # 12 characters


class QuestionStore:
    """A small key -> question table; entries older than ``ttl`` seconds are gone.

    ``where``: the SQLite file (the store opens and closes it), or a ``Database`` shared
    with other stores (its owner closes it). Safe to use from several threads."""

    def __init__(
        self,
        where: Path | str | Database,
        *,
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._owned = not isinstance(where, Database)
        if isinstance(where, Database):
            self.database = where
        else:
            self.database = SqliteDatabase(where, synchronous="NORMAL")
        self.path: Path | None = getattr(self.database, "path", None)  # the SQLite file
        self.ttl = ttl
        self._clock = clock
        try:
            self.database.migrate(STORE, _MIGRATIONS)
            self.prune()
        except BaseException:
            self.close()
            raise

    def put(self, question: str, quoted: tuple[str, int] | None = None, *, chat_id: int) -> str:
        key = question_key(question, quoted, chat_id)
        with self.database.write() as conn:
            conn.execute(
                "INSERT INTO questions (key, question, doc_id, start, created, chat_id) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "question = excluded.question, doc_id = excluded.doc_id, "
                "start = excluded.start, created = excluded.created, chat_id = excluded.chat_id",
                (
                    key,
                    question,
                    quoted[0] if quoted else None,
                    quoted[1] if quoted else None,
                    self._clock(),
                    chat_id,
                ),
            )
        return key

    def get(self, key: str, *, chat_id: int) -> StoredQuestion | None:
        """The question behind ``key`` if ``chat_id`` asked it and it has not expired."""
        with self.database.read() as conn:
            row = conn.execute(
                "SELECT question, doc_id, start, created FROM questions "
                "WHERE key = ? AND chat_id = ?",
                (key, chat_id),
            ).fetchone()
        if row is None or row[3] < self._clock() - self.ttl:
            return None
        quoted = (row[1], int(row[2])) if row[1] is not None else None
        return StoredQuestion(key, row[0], quoted)

    def prune(self) -> int:
        with self.database.write() as conn:
            cursor = conn.execute(
                "DELETE FROM questions WHERE created < ?", (self._clock() - self.ttl,)
            )
            return cursor.rowcount

    def close(self) -> None:
        """Close the database if this store opened it (a shared one is its owner's)."""
        if self._owned:
            self.database.close()
