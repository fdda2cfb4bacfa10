"""Questions behind "More sources" buttons, in SQLite, so buttons survive a restart.

Callback data is limited to 64 bytes, so a button carries a short key; the question
text (and the passage the answer quoted) are kept here, keyed by a hash of them.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    key TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    doc_id TEXT,
    start INTEGER,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class StoredQuestion:
    key: str
    question: str
    quoted: tuple[str, int] | None  # (doc_id, passage start) of the quoted passage


def question_key(question: str, quoted: tuple[str, int] | None) -> str:
    raw = f"{question}\x00{quoted[0]}\x00{quoted[1]}" if quoted else question
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
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self.prune()

    def put(self, question: str, quoted: tuple[str, int] | None = None) -> str:
        key = question_key(question, quoted)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO questions (key, question, doc_id, start, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    key,
                    question,
                    quoted[0] if quoted else None,
                    quoted[1] if quoted else None,
                    self._clock(),
                ),
            )
        return key

    def get(self, key: str) -> StoredQuestion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT question, doc_id, start, created FROM questions WHERE key = ?", (key,)
            ).fetchone()
        if row is None or row[3] < self._clock() - self.ttl:
            return None
        quoted = (row[1], int(row[2])) if row[1] is not None else None
        return StoredQuestion(key, row[0], quoted)

    def prune(self) -> int:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM questions WHERE created < ?", (self._clock() - self.ttl,)
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
