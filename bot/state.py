"""Questions behind "More sources" buttons, in SQLite, so buttons survive a restart.

Callback data is limited to 64 bytes, so a button carries a short key; the question
text (and the passage the answer quoted) are kept here, keyed by a hash of them and of the
chat that asked. A key works only in that chat: elsewhere it is "expired", so a key cannot
be used to find out whether some question was asked.

The schema is numbered migrations, opened like the alert store's
(``index.sqlite_migrations``); a damaged file raises ``StateFileError`` naming it.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from index.sqlite_migrations import connect, open_schema, state_file_errors

_MIGRATIONS = (
    # 1: the questions (created with IF NOT EXISTS: files from before numbering have it)
    """
    CREATE TABLE IF NOT EXISTS questions (
        key TEXT PRIMARY KEY,
        question TEXT NOT NULL,
        doc_id TEXT,
        start INTEGER,
        created REAL NOT NULL
    )
    """,
    # 2: the chat a key belongs to; keys from before it belong to none, and so expire
    "ALTER TABLE questions ADD COLUMN chat_id INTEGER",
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
    """A small key -> question table; entries older than ``ttl`` seconds are gone."""

    def __init__(self, path: Path, *, ttl: float, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        with state_file_errors(path):
            self._db = connect(path, synchronous="NORMAL", check_same_thread=False)
        try:
            open_schema(self._db, path, _MIGRATIONS)
        except BaseException:
            self._db.close()
            raise
        self.prune()

    def put(self, question: str, quoted: tuple[str, int] | None = None, *, chat_id: int) -> str:
        key = question_key(question, quoted, chat_id)
        with self._lock, state_file_errors(self.path):
            self._db.execute(
                "INSERT OR REPLACE INTO questions (key, question, doc_id, start, created, "
                "chat_id) VALUES (?, ?, ?, ?, ?, ?)",
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
        with self._lock, state_file_errors(self.path):
            row = self._db.execute(
                "SELECT question, doc_id, start, created FROM questions "
                "WHERE key = ? AND chat_id = ?",
                (key, chat_id),
            ).fetchone()
        if row is None or row[3] < self._clock() - self.ttl:
            return None
        quoted = (row[1], int(row[2])) if row[1] is not None else None
        return StoredQuestion(key, row[0], quoted)

    def prune(self) -> int:
        with self._lock, state_file_errors(self.path):
            cursor = self._db.execute(
                "DELETE FROM questions WHERE created < ?", (self._clock() - self.ttl,)
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
