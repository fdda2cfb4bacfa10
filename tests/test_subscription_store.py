"""The subscription store: topics, limits, the alert outbox and the cursor.

The behaviour tests run on both backends (``store`` / ``make_database``: a SQLite file in
WAL mode, then a PostgreSQL database of the test's own); a few are about SQLite files.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from index.alerts import pending_changes
from index.database import Database, SchemaTooNewError, StateFileError
from index.errors import NewsdeskError
from index.store import Change
from index.subscriptions import (
    DB_NAME,
    SCHEMA_VERSION,
    STORE,
    Alert,
    AlertStateError,
    BadTopicError,
    DuplicateTopicError,
    SubscriptionNotFoundError,
    SubscriptionStore,
    TooManyTopicsError,
    clean_topic,
)
from tests.servers.postgres import DatabaseMaker


def matched(sub_id: int | None, chat_id: int | None, doc_id: str) -> Alert:
    """An alert as matching makes it (for a subscription)."""
    return Alert(
        topic="topic",
        doc_id=doc_id,
        title="Title",
        source="BBC",
        url="",
        date="",
        quote="A quote.",
        score=0.5,
        version="v000002",
        chat_id=chat_id,
        subscription_id=sub_id,
    )


@pytest.fixture
def store(make_database: DatabaseMaker) -> SubscriptionStore:
    return SubscriptionStore.on(make_database("alerts"))


def another(make_database: DatabaseMaker) -> SubscriptionStore:
    """The same store through another client (another process's connections)."""
    return SubscriptionStore.on(make_database("alerts"))


def test_add_list_remove(store: SubscriptionStore):
    a = store.add(1, "  Russian troops   in Central Asia ", user_id=7)
    b = store.add(1, "airline industry", user_id=7)
    store.add(2, "airline industry", user_id=8)
    assert a.topic == "Russian troops in Central Asia" and a.created_by == 7
    assert [s.topic for s in store.list(1)] == [
        "Russian troops in Central Asia",
        "airline industry",
    ]
    removed = store.remove(1, a.id)
    assert removed.id == a.id
    assert [s.id for s in store.list(1)] == [b.id]
    with pytest.raises(SubscriptionNotFoundError):
        store.remove(1, a.id)
    with pytest.raises(SubscriptionNotFoundError):
        store.remove(2, b.id)  # another chat's topic
    assert store.remove_all(1) == 1
    assert store.list(1) == [] and len(store.list(2)) == 1


def test_duplicate_topic_refused_per_chat(store: SubscriptionStore):
    store.add(1, "Premier League football transfers", user_id=1)
    with pytest.raises(DuplicateTopicError) as duplicate:
        store.add(1, "premier league  FOOTBALL transfers!", user_id=2)
    assert duplicate.value.topic == "Premier League football transfers"
    store.add(2, "Premier League football transfers", user_id=3)  # other chat: fine


def test_limits(make_database: DatabaseMaker):
    store = SubscriptionStore.on(make_database("alerts"), max_topics=2, max_topic_chars=40)
    store.add(1, "one topic", None)
    store.add(1, "two topic", None)
    with pytest.raises(TooManyTopicsError) as too_many:
        store.add(1, "three topic", None)
    assert (too_many.value.count, too_many.value.limit) == (2, 2)
    with pytest.raises(BadTopicError) as too_long:
        store.add(2, "x" * 41, None)
    assert too_long.value.too_long and (too_long.value.length, too_long.value.max_chars) == (41, 40)
    for bad in ("", "   ", "?!", "ab"):
        with pytest.raises(BadTopicError) as short:
            store.add(2, bad, None)
        assert not short.value.too_long
    assert issubclass(TooManyTopicsError, NewsdeskError)
    assert clean_topic("a\x00b\tc  d") == "a b c d"


def test_schema_version_recorded_and_newer_refused(make_database: DatabaseMaker):
    store = another(make_database)
    sub = store.add(5, "mobile phone technology", 9)
    store.set_cursor("v000003")
    database = make_database("alerts")
    assert database.schema_version(STORE) == SCHEMA_VERSION
    reopened = SubscriptionStore.on(database)
    assert reopened.list(5) == [sub] and reopened.cursor() == "v000003"
    _set_version(database, SCHEMA_VERSION + 1)
    with pytest.raises(SchemaTooNewError, match="schema version") as newer:
        another(make_database)
    assert (newer.value.found, newer.value.known) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert database.label in str(newer.value)


def _set_version(database: Database, version: int) -> None:
    with database.write() as conn:
        if database.dialect == "sqlite":
            conn.execute(f"PRAGMA user_version = {version}")
        else:
            conn.execute("UPDATE newsdesk_schema SET version = ? WHERE store = ?", (version, STORE))


def test_a_chat_id_beyond_32_bits(store: SubscriptionStore):
    """Telegram's group and channel ids need 64 bits (BIGINT on PostgreSQL)."""
    chat = -1001234567890
    sub = store.add(chat, "airline industry", 2**40)
    assert store.claim(chat, "a", sub.id)
    [alert] = store.lease_due("one", 60)
    assert alert.chat_id == chat and store.get(sub.id) == sub
    assert store.mark_sent([alert.id], [2**33]) == 1
    assert store.docs_for_message(chat, 2**33) == ["a"]


def test_two_stores_leasing_at_once_never_share_an_alert(make_database: DatabaseMaker):
    """Senders of several instances lease from threads at the same instant, round after
    round as new alerts arrive: every alert is taken by exactly one of them (FOR UPDATE
    SKIP LOCKED on PostgreSQL; without it, two senders read the same rows)."""
    setup = another(make_database)
    subs = [setup.add(chat, "airline industry", 1) for chat in range(1, 5)]
    senders = [another(make_database) for _ in range(4)]
    rounds = 10
    gate = threading.Barrier(len(senders) + 1)  # the senders and this thread
    taken: dict[int, set[int]] = {i: set() for i in range(len(senders))}
    errors: list[BaseException] = []

    def send(i: int, sender: SubscriptionStore) -> None:
        try:
            for _ in range(rounds):
                gate.wait(timeout=30)  # new alerts are queued: all lease at once
                taken[i].update(a.id for a in sender.lease_due(f"s{i}", 3600, now=1000.0))
                gate.wait(timeout=30)
        except BaseException as exc:
            errors.append(exc)
            gate.abort()

    threads = [threading.Thread(target=send, args=(i, s)) for i, s in enumerate(senders)]
    for t in threads:
        t.start()
    for n in range(rounds):
        for sub in subs:
            for k in range(5):
                setup.claim(sub.chat_id, f"doc{n}-{k}", sub.id)
        gate.wait(timeout=30)
        gate.wait(timeout=30)
    for t in threads:
        t.join()
    assert not errors
    every = [alert_id for ids in taken.values() for alert_id in ids]
    assert len(every) == len(set(every)) == rounds * len(subs) * 5  # each alert to one sender


def test_wal_mode_schema_version_and_reopen(tmp_path: Path):
    store = SubscriptionStore.in_data_dir(tmp_path)
    sub = store.add(5, "mobile phone technology", 9)
    store.set_cursor("v000003")
    assert store.journal_mode() == "wal"
    reopened = SubscriptionStore.in_data_dir(tmp_path)
    assert reopened.list(5) == [sub]
    assert reopened.cursor() == "v000003"
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="schema version") as newer:
        SubscriptionStore.in_data_dir(tmp_path)
    assert isinstance(newer.value, StateFileError) and newer.value.path == tmp_path / DB_NAME
    assert (newer.value.found, newer.value.known) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_the_question_store_migrates_the_same_way(tmp_path: Path):
    from bot.state import SCHEMA_VERSION as QUESTIONS_VERSION
    from bot.state import QuestionStore

    path = tmp_path / "q.sqlite3"
    QuestionStore(path, ttl=60).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == QUESTIONS_VERSION
    conn.execute(f"PRAGMA user_version = {QUESTIONS_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match=str(path)):
        QuestionStore(path, ttl=60)


def test_claim_and_mark_sent_never_twice(store: SubscriptionStore):
    sub = store.add(1, "airline industry", 1)
    assert store.claim(1, "bbc/business/001.txt", sub.id) is True
    assert store.claim(1, "bbc/business/001.txt", sub.id) is False
    [alert] = store.pending()
    store.begin_attempt([alert.id])
    assert store.mark_sent([alert.id]) == 1
    assert store.mark_sent([alert.id]) == 0  # idempotent
    assert store.pending() == []
    # Sent once: never again, even for another topic of the same chat.
    other = store.add(1, "aviation", 1)
    assert store.claim(1, "bbc/business/001.txt", other.id) is False
    assert store.status_of(1, "bbc/business/001.txt") == "sent"
    assert store.sent_count(1) == 1


def test_pending_survives_reopen_with_attempts(make_database: DatabaseMaker):
    store = another(make_database)
    sub = store.add(1, "airline industry", 1)
    store.enqueue(
        [matched(sub.id, 1, "a"), matched(sub.id, 1, "b")],
        expected_cursor=None,
        new_cursor="v000002",
    )
    store.begin_attempt([store.pending()[0].id])  # ... and the process dies here
    again = another(make_database)
    pending = again.pending()
    assert [(p.doc_id, p.attempts) for p in pending] == [("a", 1), ("b", 0)]
    assert pending[0].quote == "A quote." and pending[0].title == "Title"
    assert again.cursor() == "v000002"


def test_enqueue_is_atomic_with_cursor(store: SubscriptionStore):
    sub = store.add(1, "airline industry", 1)
    assert store.enqueue([matched(sub.id, 1, "a")], expected_cursor=None, new_cursor="v1") == 1
    # A stale cursor (another process got there first): nothing is written.
    with pytest.raises(AlertStateError):
        store.enqueue([matched(sub.id, 1, "b")], expected_cursor=None, new_cursor="v2")
    assert [p.doc_id for p in store.pending()] == ["a"] and store.cursor() == "v1"

    # A failure half-way through rolls back the inserts and the cursor together.
    class Broken:
        subscription_id, chat_id, doc_id, topic = sub.id, 1, "c", "t"
        title = source = url = date = quote = version = ""

        @property
        def score(self) -> float:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.enqueue([matched(sub.id, 1, "b"), Broken()], expected_cursor="v1", new_cursor="v2")
    assert [p.doc_id for p in store.pending()] == ["a"] and store.cursor() == "v1"


def test_paused_chats_skipped_and_pending_dropped(store: SubscriptionStore):
    a = store.add(1, "airline industry", 1)
    b = store.add(2, "airline industry", 2)
    store.claim(1, "x", a.id)
    assert store.pause_chat(1, "Forbidden: bot was blocked by the user") == 1
    assert [s.id for s in store.active()] == [b.id]
    assert store.list(1)[0].paused and "blocked" in store.list(1)[0].paused_reason
    assert store.pending() == []  # the blocked chat's queue is retired
    assert store.status_of(1, "x") == "dropped"
    # Matching for a paused chat queues nothing.
    assert store.enqueue([matched(a.id, 1, "y")], expected_cursor=None, new_cursor="v1") == 0
    # Subscribing again (the person is back) resumes the chat.
    store.add(1, "mobile phone technology", 1)
    assert {s.chat_id for s in store.active()} == {1, 2}


def test_unsubscribe_drops_its_pending_alerts(store: SubscriptionStore):
    a = store.add(1, "airline industry", 1)
    b = store.add(1, "mobile phones", 1)
    store.claim(1, "x", a.id)
    store.claim(1, "y", b.id)
    store.remove(1, a.id)
    assert [p.doc_id for p in store.pending()] == ["y"]
    store.remove_all(1)
    assert store.pending() == []
    # An alert for a removed subscription is not queued.
    assert store.claim(1, "z", a.id) is False


def test_mark_failed_and_transient_error(store: SubscriptionStore):
    sub = store.add(1, "airline industry", 1)
    store.claim(1, "x", sub.id)
    store.claim(1, "y", sub.id)
    x, y = store.pending()
    store.note_error([x.id], "RetryAfter 5")
    assert store.pending()[0].last_error == "RetryAfter 5"
    store.mark_failed([y.id], "Bad Request: message is too long")
    assert [p.doc_id for p in store.pending()] == ["x"]
    assert store.claim(1, "y", sub.id) is False  # failed: never retried by re-matching


def test_cursor_compare_and_set(store: SubscriptionStore):
    assert store.cursor() is None
    store.set_cursor("v000001")
    with pytest.raises(AlertStateError):
        store.set_cursor("v000005", expected="v000002")
    store.set_cursor("v000002", expected="v000001")
    assert store.cursor() == "v000002"


def test_concurrent_claims_from_threads(make_database: DatabaseMaker):
    store = another(make_database)
    sub = store.add(1, "airline industry", 1)
    wins: list[bool] = []
    lock = threading.Lock()
    others = [another(make_database) for _ in range(6)]

    def worker(other: SubscriptionStore) -> None:
        for doc in ("a", "b", "c"):
            won = other.claim(1, doc, sub.id)
            with lock:
                wins.append(won)

    threads = [threading.Thread(target=worker, args=(other,)) for other in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 3 and len(store.pending()) == 3


def _change(version: str, added: list[str], *, full: bool = False) -> Change:
    return Change(version, "2026-01-01T00:00:00+00:00", added, [], [], full)


def test_pending_changes_helper():
    log = [_change("v1", [], full=True), _change("v2", ["a"]), _change("v3", ["b"])]
    assert [c.version for c in pending_changes(log, None)] == ["v1", "v2", "v3"]
    assert [c.version for c in pending_changes(log, "v1")] == ["v2", "v3"]
    assert pending_changes(log, "v3") == []
    assert [c.version for c in pending_changes(log, "v1", upto="v2")] == ["v2"]
    assert pending_changes(log, "v3", upto="v2") == []  # an index older than the cursor
    assert pending_changes(log, "v1", upto="v9") == []  # the index is not in the log
    # The index was deleted and rebuilt: resume after its last full rebuild.
    rebuilt = [_change("v1", [], full=True), _change("v2", ["c"])]
    assert [c.version for c in pending_changes(rebuilt, "v7")] == ["v1", "v2"]


# ---- leases: several senders on one outbox (issue #10, fault 6) ----------------------------


def test_a_lease_holds_other_senders_off_until_it_ends(make_database: DatabaseMaker):
    store = another(make_database)
    other = another(make_database)  # another process's connections
    sub = store.add(1, "airline industry", 1)
    store.claim(1, "a", sub.id)
    store.claim(1, "b", sub.id)
    taken = store.lease_due("one", 60, now=1000.0)
    assert [a.doc_id for a in taken] == ["a", "b"]
    assert other.lease_due("two", 60, now=1030.0) == []  # held by "one"
    assert [a.doc_id for a in store.lease_due("one", 60, now=1030.0)] == ["a", "b"]  # its own
    ids = [a.id for a in taken]
    assert store.begin_attempt(ids, owner="one", lease=60, now=1040.0)  # renewed to 1100
    assert other.lease_due("two", 60, now=1095.0) == []
    assert not other.begin_attempt(ids, owner="two", lease=60, now=1095.0)  # not its own
    # "one" dies here, mid-send: "two" takes over once the lease has ended
    assert other.interrupted(now=1095.0) == []  # still held: maybe still being sent
    assert [a.attempts for a in other.interrupted(now=1101.0)] == [1, 1]
    assert [a.doc_id for a in other.lease_due("two", 60, now=1101.0)] == ["a", "b"]
    assert not store.begin_attempt(ids, owner="one", lease=60, now=1102.0)  # lost it
    assert other.begin_attempt(ids, owner="two", lease=60, now=1102.0)
    assert other.mark_sent(ids) == 2 and store.pending() == []


def test_only_sends_in_flight_count_as_interrupted(make_database: DatabaseMaker):
    """A send that met a transient error did not go out; one cut off mid-send may have.
    An instance restarted under its own name sees its own in-flight sends at once."""
    store = another(make_database)
    sub = store.add(1, "airline industry", 1)
    for doc in ("a", "b", "c"):
        store.claim(1, doc, sub.id)
    a, b, c = (x.id for x in store.lease_due("bot-1", 60, now=1000.0))
    assert store.has_pending()
    assert store.begin_attempt([a], owner="bot-1", lease=60, now=1001.0)
    store.note_error([a], "timed out")  # transient: kept pending, not sent
    store.release([a], "bot-1")
    assert store.begin_attempt([b], owner="bot-1", lease=60, now=1002.0)
    store.mark_sent([b])
    assert store.begin_attempt([c], owner="bot-1", lease=60, now=1003.0)
    # bot-1 is killed here, mid-send of c; it restarts under its name at once
    assert store.interrupted(now=1004.0) == []  # still leased: another instance waits
    assert [x.doc_id for x in store.interrupted("bot-1", now=1004.0)] == ["c"]
    assert [x.doc_id for x in store.interrupted(now=1064.0)] == ["c"]  # the lease ended
    assert [x.doc_id for x in store.lease_due("bot-1", 60, now=1005.0)] == ["a", "c"]
    assert store.begin_attempt([a, c], owner="bot-1", lease=60, now=1005.0)
    store.mark_sent([a, c])
    assert store.interrupted("bot-1", now=2000.0) == [] and not store.has_pending()


def test_a_released_lease_is_free_at_once_and_only_pending_rows_are_leased(
    make_database: DatabaseMaker,
):
    store = another(make_database)
    sub = store.add(1, "airline industry", 1)
    store.claim(1, "a", sub.id)
    store.claim(1, "b", sub.id)
    a, b = store.lease_due("one", 60, now=1000.0)
    store.mark_sent([a.id])
    assert store.release([a.id, b.id], "two") == 0  # not its lease
    assert store.release([a.id, b.id], "one") == 1  # the sent one stays sent
    assert [x.doc_id for x in store.lease_due("two", 60, now=1001.0)] == ["b"]


def test_schema_2_gains_the_lease_columns(tmp_path: Path):
    db = tmp_path / DB_NAME
    conn = sqlite3.connect(db)
    SubscriptionStore(db)
    conn.executescript(
        "ALTER TABLE alerts DROP COLUMN claimed_by; ALTER TABLE alerts DROP COLUMN claimed_until;"
        "ALTER TABLE alerts DROP COLUMN sending; PRAGMA user_version = 2;"
    )
    conn.close()
    store = SubscriptionStore(db)
    sub = store.add(1, "airline industry", 1)
    store.claim(1, "a", sub.id)
    assert [x.doc_id for x in store.lease_due("one", 60)] == ["a"]
