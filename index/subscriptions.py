"""Topic subscriptions, the alert outbox and the change-log cursor, in the state database.

By default the file ``<data_dir>/alerts.sqlite3`` (WAL mode); with PostgreSQL configured,
the shared state database (``index.database``: the same behaviour on both). The schema is
numbered migrations run by ``Database.migrate``, shared with the bot's other stores. Every
method takes its own short-lived connection (a pooled one on PostgreSQL), so a
``SubscriptionStore`` may be shared by the bot's threads and by other processes or
machines; writes are transactions (SQLite: ``BEGIN IMMEDIATE``, waiting for each other).

Delivery is an outbox, so that no alert is sent twice and none is lost:

1. Matching (``enqueue``) inserts one *pending* row per (chat, article) with
   ``ON CONFLICT DO NOTHING`` — a (chat, article) pair that was ever queued is never
   queued again — and moves the change-log cursor forward, in one transaction.
   A crash before the commit leaves neither: the versions are matched again.
2. Delivery takes a *lease* on what is due (``lease_due``): pending rows that no
   other sender holds, reserved for its owner for some seconds, so that any number of
   bot processes on one data folder (or one PostgreSQL database) send each alert once;
   on PostgreSQL the rows are taken ``FOR UPDATE SKIP LOCKED``, so two senders never
   take the same row even at the same instant. Before each message,
   ``begin_attempt`` checks the rows are still its own, renews the lease and counts
   the try; it then sends the message and at once ``mark_sent`` (which also records
   the message id, so a reply to the alert can be traced to its articles). A sender
   that dies holds its rows until the lease ends; then another takes them; after
   a transient error it gives them up at once (``release``). A crash between the
   send and ``mark_sent`` is the one window in which an alert can go out twice (Telegram
   gives no idempotency key); rows still pending with ``attempts > 0`` and no live
   lease are exactly those (``interrupted``), and are logged as possible repeats.
3. A permanent failure (``mark_failed``), a paused chat (``pause_chat``) or a
   removed topic (``remove``/``remove_all``) retires its pending rows, which
   stay in the table so the pair is still never alerted again.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from index.database import POSTGRES, Connection, Database, SqliteDatabase
from index.errors import NewsdeskError

DB_NAME = "alerts.sqlite3"
MAX_TOPICS_PER_CHAT = 10
MAX_TOPIC_CHARS = 150
MIN_TOPIC_CHARS = 3
MAX_VARIABLES = 500  # ids per "IN (...)": well under SQLite's limit on bound variables

PENDING, SENT, FAILED, DROPPED = "pending", "sent", "failed", "dropped"

_WORD = re.compile(r"\w+", re.UNICODE)


# ---- errors: typed, with their data; the bot and the CLI word them for people -------------


class SubscriptionError(NewsdeskError):
    """A subscription request that cannot be carried out."""


class BadTopicError(SubscriptionError):
    """The topic is not text, too short (``length < min_chars``, or no word) or too long
    (``length > max_chars``)."""

    def __init__(self, length: int, *, min_chars: int, max_chars: int) -> None:
        self.length = length
        self.min_chars = min_chars
        self.max_chars = max_chars
        if self.too_long:
            why = f"{length} characters long, the most is {max_chars}"
        else:
            why = f"not a topic: at least {min_chars} characters with a word are needed"
        super().__init__(f"The topic is {why}.")

    @property
    def too_long(self) -> bool:
        return self.length > self.max_chars


class DuplicateTopicError(SubscriptionError):
    """The chat already follows this topic (``topic``: as it was saved)."""

    def __init__(self, chat_id: int, topic: str) -> None:
        super().__init__(f"Chat {chat_id} already follows “{topic}”.")
        self.chat_id = chat_id
        self.topic = topic


class TooManyTopicsError(SubscriptionError):
    """The chat already follows ``count`` topics, the most allowed (``limit``)."""

    def __init__(self, chat_id: int, count: int, limit: int) -> None:
        super().__init__(
            f"Chat {chat_id} already follows {count} topics, the most allowed ({limit})."
        )
        self.chat_id = chat_id
        self.count = count
        self.limit = limit


class SubscriptionNotFoundError(SubscriptionError):
    """No topic ``subscription_id`` in chat ``chat_id``."""

    def __init__(self, chat_id: int, subscription_id: int) -> None:
        super().__init__(f"Chat {chat_id} follows no topic {subscription_id}.")
        self.chat_id = chat_id
        self.subscription_id = subscription_id


class AlertStateError(NewsdeskError):
    """The change-log cursor is ``current``, not the ``expected`` one: another process
    matched these versions meanwhile."""

    def __init__(self, expected: str | None, current: str | None, what: str) -> None:
        super().__init__(f"The alert cursor is {current}, not {expected}; {what}.")
        self.expected = expected
        self.current = current


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def clean_topic(topic: str, max_chars: int = MAX_TOPIC_CHARS) -> str:
    """Tidy a topic typed by a person (control characters out, spaces collapsed) or raise
    ``BadTopicError``."""
    if not isinstance(topic, str):
        raise BadTopicError(0, min_chars=MIN_TOPIC_CHARS, max_chars=max_chars)
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in topic)
    text = " ".join(text.split())
    if not _WORD.search(text) or len(text) < MIN_TOPIC_CHARS or len(text) > max_chars:
        raise BadTopicError(len(text), min_chars=MIN_TOPIC_CHARS, max_chars=max_chars)
    return text


def topic_key(topic: str) -> str:
    """What makes two topics the same: their words, case-folded, in order."""
    return " ".join(_WORD.findall(topic.casefold()))


# ---- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    chat_id: int
    topic: str
    created_at: str
    created_by: int | None
    paused: bool = False
    paused_reason: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """The one alert record: an article that matches a topic, with the verbatim quote
    that matched best (``quote_start``: its offset in the article).

    Matching (``index.alerts``) makes them: for a subscription (``chat_id`` and
    ``subscription_id`` set), or for a preview (neither). The outbox keeps what is needed
    to send one after the index moved on, and gives it back queued: ``id`` (its row),
    ``queued_at``, ``attempts`` and ``last_error`` set.
    """

    topic: str
    doc_id: str
    title: str
    source: str
    url: str
    date: str
    quote: str
    score: float
    version: str = ""
    chat_id: int | None = None
    subscription_id: int | None = None
    quote_start: int = 0
    passage_id: int = -1
    id: int = 0
    queued_at: str = ""
    attempts: int = 0
    last_error: str = ""


_SCHEMA = """
CREATE TABLE subscriptions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id       INTEGER NOT NULL,
    topic         TEXT    NOT NULL,
    topic_key     TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    created_by    INTEGER,
    paused        INTEGER NOT NULL DEFAULT 0,
    paused_reason TEXT    NOT NULL DEFAULT '',
    UNIQUE (chat_id, topic_key)
);
CREATE INDEX subscriptions_active ON subscriptions (paused, chat_id);

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id         INTEGER NOT NULL,
    doc_id          TEXT    NOT NULL,
    subscription_id INTEGER,
    topic           TEXT    NOT NULL DEFAULT '',
    title           TEXT    NOT NULL DEFAULT '',
    source          TEXT    NOT NULL DEFAULT '',
    url             TEXT    NOT NULL DEFAULT '',
    date            TEXT    NOT NULL DEFAULT '',
    quote           TEXT    NOT NULL DEFAULT '',
    score           REAL    NOT NULL DEFAULT 0,
    version         TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL DEFAULT 'pending',
    queued_at       TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    sent_at         TEXT,
    UNIQUE (chat_id, doc_id)
);
CREATE INDEX alerts_status ON alerts (status, chat_id);

CREATE TABLE state (
    key   TEXT PRIMARY KEY,
    value TEXT
);
"""

# Version 2: which Telegram message carried which alerts (a reply to an alert asks its
# articles first). Written by mark_sent in the same transaction as the status.
_SCHEMA_V2 = """
CREATE TABLE alert_messages (
    chat_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    doc_id     TEXT    NOT NULL,
    PRIMARY KEY (chat_id, message_id, doc_id)
);
"""

# Version 3: a sender's lease on the alerts it is delivering (see the module docstring).
_SCHEMA_V3 = """
ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
ALTER TABLE alerts ADD COLUMN claimed_until REAL NOT NULL DEFAULT 0
"""

# The same three versions in PostgreSQL: Telegram chat and message ids need 64 bits
# (BIGINT), ids are identity columns, scores and lease ends DOUBLE PRECISION.
_PG_SCHEMA = """
CREATE TABLE subscriptions (
    id            BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    chat_id       BIGINT  NOT NULL,
    topic         TEXT    NOT NULL,
    topic_key     TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    created_by    BIGINT,
    paused        INTEGER NOT NULL DEFAULT 0,
    paused_reason TEXT    NOT NULL DEFAULT '',
    UNIQUE (chat_id, topic_key)
);
CREATE INDEX subscriptions_active ON subscriptions (paused, chat_id);

CREATE TABLE alerts (
    id              BIGINT  GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    chat_id         BIGINT  NOT NULL,
    doc_id          TEXT    NOT NULL,
    subscription_id BIGINT,
    topic           TEXT    NOT NULL DEFAULT '',
    title           TEXT    NOT NULL DEFAULT '',
    source          TEXT    NOT NULL DEFAULT '',
    url             TEXT    NOT NULL DEFAULT '',
    date            TEXT    NOT NULL DEFAULT '',
    quote           TEXT    NOT NULL DEFAULT '',
    score           DOUBLE PRECISION NOT NULL DEFAULT 0,
    version         TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL DEFAULT 'pending',
    queued_at       TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    sent_at         TEXT,
    UNIQUE (chat_id, doc_id)
);
CREATE INDEX alerts_status ON alerts (status, chat_id);

CREATE TABLE alert_state (
    key   TEXT PRIMARY KEY,
    value TEXT
)
"""
_PG_SCHEMA_V2 = """
CREATE TABLE alert_messages (
    chat_id    BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    doc_id     TEXT   NOT NULL,
    PRIMARY KEY (chat_id, message_id, doc_id)
)
"""
_PG_SCHEMA_V3 = """
ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
ALTER TABLE alerts ADD COLUMN claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0
"""

# Version 4 (both dialects): a send in flight (begin_attempt set it; the outcome clears
# it), so that only those count as "may have gone out" after a crash, not every alert that
# once met a transient error. Rows of older versions in flight are those already tried.
_SCHEMA_V4 = """
ALTER TABLE alerts ADD COLUMN sending INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET sending = 1 WHERE status = 'pending' AND attempts > 0
"""

_MIGRATIONS = (
    {"sqlite": _SCHEMA, "postgres": _PG_SCHEMA},
    {"sqlite": _SCHEMA_V2, "postgres": _PG_SCHEMA_V2},
    {"sqlite": _SCHEMA_V3, "postgres": _PG_SCHEMA_V3},
    _SCHEMA_V4,
)
STORE = "alerts"
SCHEMA_VERSION = len(_MIGRATIONS)

_SUB_COLUMNS = "id, chat_id, topic, created_at, created_by, paused, paused_reason"
# The outbox's columns that are fields of ``Alert`` (quote_start, passage_id are not kept).
_OUTBOX_FIELDS = (
    "id",
    "chat_id",
    "doc_id",
    "subscription_id",
    "topic",
    "title",
    "source",
    "url",
    "date",
    "quote",
    "score",
    "version",
    "queued_at",
    "attempts",
    "last_error",
)
_ALERT_COLUMNS = ", ".join(_OUTBOX_FIELDS)
assert set(_OUTBOX_FIELDS) <= {f.name for f in fields(Alert)}


def _subscription(row: tuple) -> Subscription:
    return Subscription(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])


def _queued(row: tuple) -> Alert:
    return Alert(**dict(zip(_OUTBOX_FIELDS, row, strict=True)))


def _placeholders(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), MAX_VARIABLES):
        yield values[start : start + MAX_VARIABLES]


class SubscriptionStore:
    """Subscriptions, sent and pending alerts, and the last processed index version."""

    def __init__(
        self,
        where: Path | str | Database,
        *,
        max_topics: int = MAX_TOPICS_PER_CHAT,
        max_topic_chars: int = MAX_TOPIC_CHARS,
    ) -> None:
        """``where``: the SQLite file, or a ``Database`` (the shared PostgreSQL one)."""
        self.database = where if isinstance(where, Database) else SqliteDatabase(where)
        self.path: Path | None = getattr(self.database, "path", None)  # the SQLite file
        self.max_topics = max_topics
        self.max_topic_chars = max_topic_chars
        self._postgres = self.database.dialect == POSTGRES
        # on PostgreSQL, beside other stores: a name of its own for the cursor's table
        self._state = "alert_state" if self._postgres else "state"
        self.database.migrate(STORE, _MIGRATIONS)

    @classmethod
    def in_data_dir(cls, data_dir: Path, **limits: int) -> SubscriptionStore:
        return cls(Path(data_dir) / DB_NAME, **limits)

    @classmethod
    def on(cls, database: Database, **limits: int) -> SubscriptionStore:
        """The store in ``database`` (e.g. the shared PostgreSQL state database)."""
        return cls(database, **limits)

    # -- connections ------------------------------------------------------------------

    def _read(self) -> AbstractContextManager[Connection]:
        return self.database.read()

    def _write(self) -> AbstractContextManager[Connection]:
        """One write transaction: committed when the block ends, rolled back on error."""
        return self.database.write()

    def journal_mode(self) -> str:
        """SQLite's journal mode ("wal"); "" on PostgreSQL."""
        if not isinstance(self.database, SqliteDatabase):
            return ""
        return self.database.journal_mode()

    # -- subscriptions ----------------------------------------------------------------

    def add(self, chat_id: int, topic: str, user_id: int | None) -> Subscription:
        """Follow ``topic`` in ``chat_id``. A chat that was paused is resumed by this."""
        text = clean_topic(topic, self.max_topic_chars)
        key = topic_key(text)
        with self._write() as conn:
            conn.lock(f"subscriptions:{chat_id}")  # concurrent adds count one at a time
            rows = conn.execute(
                f"SELECT {_SUB_COLUMNS}, topic_key FROM subscriptions WHERE chat_id = ?",
                (chat_id,),
            ).fetchall()
            for row in rows:
                if row[7] == key:
                    raise DuplicateTopicError(chat_id, row[2])
            if len(rows) >= self.max_topics:
                raise TooManyTopicsError(chat_id, len(rows), self.max_topics)
            conn.execute(
                "UPDATE subscriptions SET paused = 0, paused_reason = '' WHERE chat_id = ?",
                (chat_id,),
            )
            created = utc_now()
            sub_id = int(
                conn.execute(
                    "INSERT INTO subscriptions (chat_id, topic, topic_key, created_at, "
                    "created_by) VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (chat_id, text, key, created, user_id),
                ).fetchone()[0]
            )
        return Subscription(sub_id, chat_id, text, created, user_id)

    def get(self, sub_id: int) -> Subscription | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE id = ?", (sub_id,)
            ).fetchone()
        return _subscription(row) if row else None

    def list(self, chat_id: int) -> list[Subscription]:
        """The chat's topics, oldest first (paused ones included, marked)."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE chat_id = ? ORDER BY id",
                (chat_id,),
            ).fetchall()
        return [_subscription(r) for r in rows]

    def remove(self, chat_id: int, sub_id: int) -> Subscription:
        """Stop following one topic; its queued, unsent alerts are dropped with it."""
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE id = ? AND chat_id = ?",
                (sub_id, chat_id),
            ).fetchone()
            if row is None:
                raise SubscriptionNotFoundError(chat_id, sub_id)
            conn.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
            self._retire(conn, "subscription_id = ?", (sub_id,), DROPPED, "unsubscribed")
        return _subscription(row)

    def remove_all(self, chat_id: int) -> int:
        """Stop following every topic in the chat; returns how many were removed."""
        with self._write() as conn:
            count = conn.execute("DELETE FROM subscriptions WHERE chat_id = ?", (chat_id,)).rowcount
            self._retire(conn, "chat_id = ?", (chat_id,), DROPPED, "unsubscribed")
        return count

    def pause_chat(self, chat_id: int, reason: str) -> int:
        """Pause every topic of a chat the bot cannot reach; drop its queued alerts."""
        with self._write() as conn:
            count = conn.execute(
                "UPDATE subscriptions SET paused = 1, paused_reason = ? WHERE chat_id = ?",
                (reason, chat_id),
            ).rowcount
            self._retire(conn, "chat_id = ?", (chat_id,), DROPPED, f"chat paused: {reason}")
        return count

    def active(self) -> list[Subscription]:
        """Every subscription not paused, in id order."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE paused = 0 ORDER BY id"
            ).fetchall()
        return [_subscription(r) for r in rows]

    # -- the outbox -------------------------------------------------------------------

    def claim(
        self,
        chat_id: int,
        doc_id: str,
        sub_id: int | None,
        *,
        alert: Alert | None = None,
    ) -> bool:
        """Queue one alert unless (chat, article) was ever queued; True when queued now."""
        with self._write() as conn:
            return self._insert(conn, chat_id, doc_id, sub_id, alert)

    def enqueue(
        self,
        alerts: Iterable[Alert],
        *,
        expected_cursor: str | None,
        new_cursor: str | None,
    ) -> int:
        """Queue alerts and move the cursor in one transaction; returns how many were new.

        Raises AlertStateError (and changes nothing) when the cursor is no longer
        ``expected_cursor``: another process processed these versions meanwhile.
        An alert whose subscription was removed or paused meanwhile is not queued.
        """
        with self._write() as conn:
            conn.lock("alerts:cursor")
            current = self._get_state(conn, "cursor")
            if current != expected_cursor:
                raise AlertStateError(expected_cursor, current, "nothing was queued")
            queued = 0
            for alert in alerts:
                if alert.subscription_id is None or alert.chat_id is None:
                    continue
                queued += self._insert(
                    conn, alert.chat_id, alert.doc_id, alert.subscription_id, alert
                )
            if new_cursor is not None:
                self._set_state(conn, "cursor", new_cursor)
        return queued

    def _insert(
        self,
        conn: Connection,
        chat_id: int,
        doc_id: str,
        sub_id: int | None,
        alert: Alert | None,
    ) -> bool:
        if sub_id is not None:
            live = conn.execute(
                "SELECT 1 FROM subscriptions WHERE id = ? AND chat_id = ? AND paused = 0",
                (sub_id, chat_id),
            ).fetchone()
            if live is None:
                return False
        a = alert
        cur = conn.execute(
            "INSERT INTO alerts (chat_id, doc_id, subscription_id, topic, title, "
            "source, url, date, quote, score, version, queued_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                chat_id,
                doc_id,
                sub_id,
                a.topic if a else "",
                a.title if a else "",
                a.source if a else "",
                a.url if a else "",
                a.date if a else "",
                a.quote if a else "",
                float(a.score) if a else 0.0,
                a.version if a else "",
                utc_now(),
            ),
        )
        return cur.rowcount == 1

    def pending(self, chat_id: int | None = None) -> list[Alert]:
        """Queued alerts not yet sent, oldest first (all chats, or one)."""
        query = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE status = ?"
        args: tuple[object, ...] = (PENDING,)
        if chat_id is not None:
            query += " AND chat_id = ?"
            args += (chat_id,)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        return [_queued(r) for r in rows]

    def lease_due(self, owner: str, seconds: float, *, now: float | None = None) -> list[Alert]:
        """Take every pending alert that no other sender holds, for ``seconds``; oldest first.

        ``owner`` names the sender (one per bot process); rows it already holds are
        returned again. Another sender's rows are taken over only once their lease ended.
        """
        now = time.time() if now is None else now
        with self._write() as conn:
            # PostgreSQL: rows another sender is taking right now are skipped, not shared
            # (SQLite's BEGIN IMMEDIATE already lets one sender in at a time)
            rows = conn.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE status = ? "
                "AND (claimed_until <= ? OR claimed_by = ?) ORDER BY id"
                + (" FOR UPDATE SKIP LOCKED" if self._postgres else ""),
                (PENDING, now, owner),
            ).fetchall()
            ids = [r[0] for r in rows]
            for chunk in _chunks(ids):
                conn.execute(
                    "UPDATE alerts SET claimed_by = ?, claimed_until = ? "
                    f"WHERE id IN ({_placeholders(chunk)})",
                    (owner, now + seconds, *chunk),
                )
        return [_queued(r) for r in rows]

    def begin_attempt(
        self,
        alert_ids: Sequence[int],
        *,
        owner: str | None = None,
        lease: float = 0.0,
        now: float | None = None,
    ) -> bool:
        """Record that a send of these alerts starts now (call right before sending).

        With ``owner``: only when every one of them is still pending and held by ``owner``
        (else nothing changes and the result is False: do not send), renewing the lease
        for ``lease`` seconds.
        """
        if not alert_ids:
            return False
        ids = tuple(alert_ids)
        now = time.time() if now is None else now
        with self._write() as conn:
            if owner is not None:
                held = conn.execute(
                    "SELECT id FROM alerts WHERE status = ? AND claimed_by = ? "
                    f"AND id IN ({_placeholders(ids)})" + (" FOR UPDATE" if self._postgres else ""),
                    (PENDING, owner, *ids),
                ).fetchall()
                if len(held) != len(set(ids)):
                    return False
                conn.execute(
                    f"UPDATE alerts SET claimed_until = ? WHERE id IN ({_placeholders(ids)})",
                    (now + lease, *ids),
                )
            conn.execute(
                "UPDATE alerts SET attempts = attempts + 1, sending = 1, last_attempt_at = ? "
                f"WHERE status = ? AND id IN ({_placeholders(ids)})",
                (utc_now(), PENDING, *ids),
            )
        return True

    def release(self, alert_ids: Sequence[int], owner: str) -> int:
        """Give up ``owner``'s lease on these alerts (still pending): anyone may send them."""
        released = 0
        with self._write() as conn:
            for chunk in _chunks(list(alert_ids)):
                released += conn.execute(
                    "UPDATE alerts SET claimed_by = NULL, claimed_until = 0, sending = 0 "
                    f"WHERE status = ? AND claimed_by = ? AND id IN ({_placeholders(chunk)})",
                    (PENDING, owner, *chunk),
                ).rowcount
        return released

    def interrupted(self, owner: str | None = None, *, now: float | None = None) -> list[Alert]:
        """Pending alerts whose send started but whose outcome was never recorded, and that
        no live sender holds (or ``owner`` holds: this instance, restarted under its name):
        the sender died mid-send, so they may have gone out already."""
        now = time.time() if now is None else now
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE status = ? AND sending = 1 "
                "AND (claimed_until <= ? OR claimed_by = ?) ORDER BY id",
                (PENDING, now, owner or ""),
            ).fetchall()
        return [_queued(r) for r in rows]

    def has_pending(self) -> bool:
        """Whether any alert is still queued (any chat, held by anyone)."""
        with self._read() as conn:
            row = conn.execute("SELECT 1 FROM alerts WHERE status = ? LIMIT 1", (PENDING,))
            return row.fetchone() is not None

    def mark_sent(self, alert_ids: Sequence[int], message_ids: Sequence[int] = ()) -> int:
        """Record a successful send (call right after it); idempotent. Returns rows changed.

        ``message_ids``: the Telegram messages that carried these alerts, remembered in the
        same transaction so that a reply to one of them can be traced to its articles.
        """
        if not alert_ids:
            return 0
        ids = tuple(alert_ids)
        with self._write() as conn:
            for message_id in message_ids:
                conn.execute(
                    "INSERT INTO alert_messages (chat_id, message_id, doc_id) "
                    f"SELECT chat_id, ?, doc_id FROM alerts WHERE id IN ({_placeholders(ids)}) "
                    "ON CONFLICT DO NOTHING",
                    (message_id, *ids),
                )
            return self._retire(conn, f"id IN ({_placeholders(ids)})", ids, SENT, "")

    def docs_for_message(self, chat_id: int, message_id: int) -> list[str]:
        """The articles a sent alert message was about (empty: not an alert message)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT m.doc_id FROM alert_messages m LEFT JOIN alerts a "
                "ON a.chat_id = m.chat_id AND a.doc_id = m.doc_id "
                "WHERE m.chat_id = ? AND m.message_id = ? ORDER BY a.id",
                (chat_id, message_id),
            ).fetchall()
        return [r[0] for r in rows]

    def mark_failed(self, alert_ids: Sequence[int], reason: str) -> int:
        """Give up on these alerts for good (a permanent error): they are never sent."""
        return self._set_status(alert_ids, FAILED, reason)

    def note_error(self, alert_ids: Sequence[int], error: str) -> None:
        """Keep alerts pending after a transient error, remembering it."""
        if not alert_ids:
            return
        with self._write() as conn:
            conn.execute(
                f"UPDATE alerts SET last_error = ?, sending = 0 WHERE status = ? "
                f"AND id IN ({_placeholders(alert_ids)})",
                (error, PENDING, *alert_ids),
            )

    def _set_status(self, alert_ids: Sequence[int], status: str, reason: str) -> int:
        if not alert_ids:
            return 0
        with self._write() as conn:
            return self._retire(
                conn, f"id IN ({_placeholders(alert_ids)})", tuple(alert_ids), status, reason
            )

    @staticmethod
    def _retire(
        conn: Connection,
        where: str,
        args: tuple[object, ...],
        status: str,
        reason: str,
    ) -> int:
        sent_at = utc_now() if status == SENT else None
        return conn.execute(
            f"UPDATE alerts SET status = ?, sent_at = ?, last_error = ?, sending = 0 "
            f"WHERE status = ? AND {where}",
            (status, sent_at, reason, PENDING, *args),
        ).rowcount

    def status_of(self, chat_id: int, doc_id: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT status FROM alerts WHERE chat_id = ? AND doc_id = ?", (chat_id, doc_id)
            ).fetchone()
        return row[0] if row else None

    def sent_count(self, chat_id: int | None = None) -> int:
        query = "SELECT COUNT(*) FROM alerts WHERE status = ?"
        args: tuple[object, ...] = (SENT,)
        if chat_id is not None:
            query += " AND chat_id = ?"
            args += (chat_id,)
        with self._read() as conn:
            return int(conn.execute(query, args).fetchone()[0])

    # -- the cursor ---------------------------------------------------------------------

    def cursor(self) -> str | None:
        """The last change-log version whose new articles were matched (None: none yet)."""
        with self._read() as conn:
            return self._get_state(conn, "cursor")

    def set_cursor(self, version: str, *, expected: str | None = None, force: bool = False) -> None:
        """Move the cursor (compare-and-set against ``expected`` unless ``force``)."""
        with self._write() as conn:
            conn.lock("alerts:cursor")
            current = self._get_state(conn, "cursor")
            if not force and current != expected:
                raise AlertStateError(expected, current, "it was not moved")
            self._set_state(conn, "cursor", version)

    def _get_state(self, conn: Connection, key: str) -> str | None:
        row = conn.execute(f"SELECT value FROM {self._state} WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_state(self, conn: Connection, key: str, value: str) -> None:
        conn.execute(
            f"INSERT INTO {self._state} (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
