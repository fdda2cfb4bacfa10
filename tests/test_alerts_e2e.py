"""Topic alerts end to end: the real bot Application with the alerts plugin, driven as users
through the local Bot API server, with ``newsdesk reindex`` run in another process.

The hashing embedder (``NEWSDESK_EMBEDDING_MODEL=hashing``, with its own threshold) keeps
these fast; the bot checks for new index versions every 0.3 s.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot
from telegram.error import BadRequest

from bot.alerts import alerts_plugin
from bot.delivery import AlertService
from bot.plugins import BotPlugin
from index.embedders.hashing import HashingEmbedder
from index.store import current_version_path
from index.subscriptions import DB_NAME, SCHEMA_VERSION, SubscriptionStore
from tests.botapi.server import BotApiServer, BotMessage
from tests.conftest import ArticleWriter, run_cli, wait_until
from tests.test_alert_matching import HASHING_THRESHOLD
from tests.test_bot_e2e import ADMIN, TOKEN, USER, Harness, make_settings

OTHER = USER + 1
GROUP = -100777
ADMIN_MEMBER = 3101
MEMBER = 3102
TOPIC = "Russian troops in Central Asia"
DRILLS_TITLE = "Russian troops start drills in Tajikistan"
DRILLS = (
    "Russian troops based in Tajikistan began joint exercises with Central Asia allies on "
    "Monday, the defence ministry in Moscow said.",
    "The drills near the Afghan border involve about 2,000 Russian troops and will last a week, "
    "the ministry added. Central Asia has hosted several such exercises this year.",
)
DRILLS_HEADERS = {"Source": "Asia Wire", "URL": "https://example.org/asia/drills"}
PATROL_TITLE = "Russian troops join patrols on the Kyrgyz border"
PATROL = (
    "Russian troops stationed in Kyrgyzstan joined border patrols in Central Asia on Friday, "
    "officials in Bishkek said.",
    "The patrols will cover the mountain passes where Russian troops have trained since May.",
)
PASTA_TITLE = "Naples chefs share pasta secrets"
PASTA = (
    "Chefs in Naples say the secret of good pasta is plenty of salted water and patience.",
    "A new cookbook collects recipes for sauces from every region of Italy.",
)


def is_alert(message: BotMessage) -> bool:
    return message.event == "sent" and message.text.startswith(("New article", "2 new", "3 new"))


class AlertHarness(Harness):
    """The bot harness with the alerts plugin, plus re-indexing in another process."""

    def __init__(self, server: BotApiServer, settings: Any, corpus: Path) -> None:
        super().__init__(server, settings, HashingEmbedder(256))
        self.corpus = corpus
        self.plugin = alerts_plugin(threshold=HASHING_THRESHOLD, retry_interval=0.3)

    def bot(self, plugins: list[BotPlugin] | None = None) -> Any:
        return super().bot([self.plugin, *(plugins or [])])

    @property
    def alerts(self) -> AlertService:
        service = self.app.bot_data.get(AlertService)
        assert service is not None
        return service

    def store(self) -> SubscriptionStore:
        return SubscriptionStore.in_data_dir(self.settings.data_dir)

    async def reindex(self) -> str:
        """``newsdesk reindex`` in a child process; returns the version it left current."""
        env = {
            "NEWSDESK_EMBEDDING_MODEL": "hashing",
            "NEWSDESK_DATA_DIR": str(self.settings.data_dir),
            "NEWSDESK_CORPUS_DIRS": str(self.corpus),
        }
        done = await asyncio.to_thread(run_cli, "reindex", "--quiet", env=env, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        current = current_version_path(self.settings.index_path)
        assert current is not None
        return current.name

    async def settled(self, version: str, timeout: float = 15.0) -> None:
        """Wait until the bot serves ``version`` and its alert round for it is over."""

        def done() -> bool:
            if self.services.engine.index.version != version:
                return False
            return self.alerts.store.cursor() == version and not self.alerts.busy

        await wait_until(done, timeout)

    async def started(self, timeout: float = 10.0) -> None:
        """Wait for the catch-up round that follows a start."""
        await wait_until(lambda: self.alerts.rounds >= 1 and not self.alerts.busy, timeout)

    def alerts_to(self, chat_id: int) -> list[BotMessage]:
        return [m for m in self.server.sent(chat_id) if is_alert(m)]


@pytest.fixture
async def harness(small_corpus: Path, tmp_path: Path) -> AsyncIterator[AlertHarness]:
    async with BotApiServer(TOKEN) as server:
        settings = make_settings(
            tmp_path / "data", small_corpus, server.base_url, bot_rate_limit=100
        )
        yield AlertHarness(server, settings, small_corpus)


# ---- the lifecycle of one subscription ---------------------------------------------------


async def test_subscriber_gets_one_alert_per_new_article_never_twice_and_catches_up(
    harness: AlertHarness, write_article: ArticleWriter
) -> None:
    async with harness.bot():
        await harness.started()
        reply = await harness.say(f"/subscribe {TOPIC}")
        assert reply.text.startswith(f"Subscribed to “{TOPIC}”")
        assert "Closest in the archive now" in reply.text
        assert "Russian defense minister visits Dushanbe" in reply.text

        # a new article on the topic, indexed by another process: one alert, with the quote
        write_article("asia/drills.txt", DRILLS_TITLE, *DRILLS, headers=DRILLS_HEADERS)
        version = await harness.reindex()
        alert = await harness.server.wait_for_message(USER, is_alert, timeout=15)
        await harness.settled(version)
        assert alert.text.startswith(f"New article on “{TOPIC}”")
        assert f"{DRILLS_TITLE} · Asia Wire" in alert.text
        assert [e["url"] for e in alert.entities if e["type"] == "text_link"] == [
            DRILLS_HEADERS["URL"]
        ]
        quote = next(e for e in alert.entities if e["type"] == "blockquote")
        quoted = alert.text[quote["offset"] : quote["offset"] + quote["length"]]
        assert quoted in " ".join(DRILLS) and "Russian troops" in quoted  # verbatim
        assert len(harness.alerts_to(USER)) == 1

        # the same re-index again: nothing new, nothing sent
        assert await harness.reindex() == version
        # the article edited (a changed article, not a new one): nothing sent
        write_article(
            "asia/drills.txt", DRILLS_TITLE, *DRILLS, "Updated: the drills end on Sunday."
        )
        changed = await harness.reindex()
        assert changed != version
        await harness.settled(changed)
        # an unrelated article: nothing sent
        write_article("food/pasta.txt", PASTA_TITLE, *PASTA)
        unrelated = await harness.reindex()
        await harness.settled(unrelated)
        assert len(harness.alerts_to(USER)) == 1

    # restarted: the subscription is kept and nothing is repeated
    async with harness.bot():
        await harness.started()
        topics = await harness.say("/topics")
        assert f"1. {TOPIC}" in topics.text
        assert len(harness.alerts_to(USER)) == 1

    # a re-index while the bot is down is alerted once when it starts
    write_article("asia/patrol.txt", PATROL_TITLE, *PATROL, headers={"Source": "Asia Wire"})
    while_down = await harness.reindex()
    async with harness.bot():
        caught_up = await harness.server.wait_for_message(USER, is_alert, timeout=15)
        await harness.settled(while_down)
        assert caught_up.text.startswith(f"New article on “{TOPIC}”")
        assert PATROL_TITLE in caught_up.text
    async with harness.bot():
        await harness.started()
    assert [PATROL_TITLE in m.text for m in harness.alerts_to(USER)] == [False, True]
    assert harness.store().sent_count(USER) == 2


# ---- several chats: blocked, unsubscribed, transient errors ------------------------------


async def test_blocked_chat_is_paused_others_still_get_alerts_and_unsubscribe_stops_them(
    harness: AlertHarness, write_article: ArticleWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.alerts")
    async with harness.bot():
        await harness.started()
        await harness.say(f"/subscribe {TOPIC}", chat_id=USER)
        await harness.say(f"/subscribe {TOPIC}", chat_id=OTHER)
        await harness.say("/subscribe Central Asia military exercises", chat_id=OTHER)
        harness.server.block(USER)
        write_article("asia/drills.txt", DRILLS_TITLE, *DRILLS, headers=DRILLS_HEADERS)
        version = await harness.reindex()
        alert = await harness.server.wait_for_message(OTHER, is_alert, timeout=15)
        await harness.settled(version)
        assert DRILLS_TITLE in alert.text  # one alert per (chat, article), whatever the topics
        assert harness.alerts_to(USER) == []
        assert [s.paused for s in harness.alerts.store.list(USER)] == [True]
        assert f"Alerts to chat {USER} paused" in caplog.text

        # /unsubscribe: pick one topic with its button, then "All topics"
        menu = await harness.say("/unsubscribe", chat_id=OTHER)
        assert [b["text"] for b in menu.buttons] == [
            f"✕ {TOPIC}",
            "✕ Central Asia military exercises",
            "All topics",
        ]
        query = await harness.click(menu, user_id=OTHER)
        answer = await harness.callback_answer(query)
        assert answer["text"] == f"Stopped following “{TOPIC}”."
        edited = await harness.server.wait_for_message(OTHER, lambda m: m.event == "edited")
        assert edited.text.startswith("Topics followed in this chat (1 of 10)")
        assert [b["text"] for b in edited.buttons] == ["✕ Central Asia military exercises"]
        gone = await harness.say("/unsubscribe all", chat_id=OTHER)
        assert gone.text == "Stopped following all 1 topic. No more alerts will arrive here."

        write_article("asia/patrol.txt", PATROL_TITLE, *PATROL)
        later = await harness.reindex()
        await harness.settled(later)
        assert len(harness.alerts_to(OTHER)) == 1
        assert harness.alerts_to(USER) == []

        # the blocked user comes back: /subscribe resumes the chat's topics
        harness.server.unblock(USER)
        back = await harness.say("/subscribe Kyrgyz border patrols", chat_id=USER)
        assert back.text.startswith("Subscribed to")
        assert [s.paused for s in harness.alerts.store.list(USER)] == [False, False]


async def test_alerts_held_back_by_a_transient_error_go_out_in_a_later_round(
    harness: AlertHarness, write_article: ArticleWriter
) -> None:
    async with harness.bot():
        await harness.started()
        await harness.say(f"/subscribe {TOPIC}")
        # two failed sends (a 429 without a usable retry_after: PTB's limiter does not retry
        # it, the plugin sees a NetworkError); each round tries again after retry_interval
        harness.server.flood(2, retry_after=0)
        write_article("asia/drills.txt", DRILLS_TITLE, *DRILLS)
        await harness.reindex()
        alert = await harness.server.wait_for_message(USER, is_alert, timeout=15)
    assert DRILLS_TITLE in alert.text
    assert len(harness.alerts_to(USER)) == 1
    statuses = [c.status for c in harness.server.calls("sendMessage")]
    assert statuses[-3:] == [429, 429, 200]
    with sqlite3.connect(harness.settings.data_dir / DB_NAME) as conn:
        row = conn.execute("SELECT status, attempts FROM alerts").fetchone()
    assert row == ("sent", 3)  # three rounds, one message


# ---- commands, limits, groups ------------------------------------------------------------


async def test_subscribe_usage_preview_limits_and_topic_buttons(
    small_corpus: Path, tmp_path: Path
) -> None:
    async with BotApiServer(TOKEN) as server:
        settings = make_settings(
            tmp_path / "data", small_corpus, server.base_url, bot_rate_limit=100
        )
        harness = AlertHarness(server, settings, small_corpus)
        harness.plugin = alerts_plugin(
            threshold=HASHING_THRESHOLD, max_topics=2, max_topic_chars=40
        )
        async with harness.bot():
            menu = [c["command"] for c in server.commands()]
            assert menu[-3:] == ["subscribe", "topics", "unsubscribe"]
            usage = await harness.say("/subscribe")
            assert "/subscribe Russian troops in Central Asia" in usage.text
            empty = await harness.say("/topics")
            assert "follows no topics" in empty.text and not empty.buttons
            nothing = await harness.say("/subscribe pasta recipes from Naples")
            assert "Nothing in the archive matches it yet; the topic is saved" in nothing.text
            dup = await harness.say("/subscribe Pasta recipes, from Naples!")
            assert "already follows “pasta recipes from Naples”" in dup.text
            long = await harness.say("/subscribe " + "troops " * 10)
            assert "characters long; please keep it under 40" in long.text
            short = await harness.say("/subscribe ?")
            assert "describe the topic in a few words" in short.text
            await harness.say(f"/subscribe {TOPIC}")
            full = await harness.say("/subscribe mobile phone technology")
            assert "already follows 2 topics, the most allowed" in full.text
            listing = await harness.say("/topics")
            assert listing.text.startswith("Topics followed in this chat (2 of 2)")
            assert len(listing.buttons) == 2  # no "All topics" under /topics
            missing = await harness.say("/unsubscribe football")
            assert "not followed in this chat" in missing.text
            second = await harness.say("/unsubscribe 2")
            assert second.text == f"Stopped following “{TOPIC}”."
            first = await harness.say("/unsubscribe pasta recipes from naples")
            assert first.text == "Stopped following “pasta recipes from Naples”."


async def test_group_topics_are_changed_by_group_admins_only(harness: AlertHarness) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup", "title": "Newsroom"}
    harness.server.set_member_status(GROUP, ADMIN_MEMBER, "administrator")
    async with harness.bot():
        await harness.started()
        refused = await harness.say(f"/subscribe {TOPIC}", user_id=MEMBER, **group)
        assert "only its admins can add or remove topics" in refused.text
        ok = await harness.say(
            f"/subscribe@{harness.server.bot_username} {TOPIC}", user_id=ADMIN_MEMBER, **group
        )
        assert ok.text.startswith(f"Subscribed to “{TOPIC}”")
        listing = await harness.say("/topics", user_id=MEMBER, **group)  # anyone may look
        assert f"1. {TOPIC}" in listing.text
        query = await harness.click(listing, user_id=MEMBER)
        denied = await harness.callback_answer(query)
        assert "only its admins" in denied["text"]
        assert len(harness.alerts.store.list(GROUP)) == 1
        not_all = await harness.say("/unsubscribe all", user_id=MEMBER, **group)
        assert "only its admins" in not_all.text
        assert len(harness.alerts.store.list(GROUP)) == 1
        query = await harness.click(listing, user_id=ADMIN_MEMBER)
        removed = await harness.callback_answer(query)
        assert removed["text"] == f"Stopped following “{TOPIC}”."
    assert harness.store().list(GROUP) == []
    checked = {c.params["user_id"] for c in harness.server.calls("getChatMember")}
    assert checked == {MEMBER, ADMIN_MEMBER}


# ---- replies to alerts -------------------------------------------------------------------


async def test_reply_to_an_alert_is_answered_from_that_article_first(
    harness: AlertHarness, write_article: ArticleWriter
) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup", "title": "Newsroom"}
    question = "how many troops take part?"
    async with harness.bot():
        await harness.started()
        await harness.say(f"/subscribe {TOPIC}", chat_id=USER)
        await harness.say(f"/subscribe {TOPIC}", user_id=ADMIN, **group)  # the bot's admin
        write_article("asia/drills.txt", DRILLS_TITLE, *DRILLS, headers=DRILLS_HEADERS)
        await harness.reindex()
        alert = await harness.server.wait_for_message(USER, is_alert, timeout=15)
        group_alert = await harness.server.wait_for_message(GROUP, is_alert, timeout=15)

        plain = await harness.say(question, chat_id=USER)  # the whole archive: the base's 7,000
        assert "7,000 troops" in plain.text
        answer = await harness.say(question, chat_id=USER, reply_to_message_id=alert.message_id)
        assert "2,000 Russian troops" in answer.text
        assert f"{DRILLS_TITLE} · Asia Wire" in answer.text

        in_group = await harness.say(
            question, user_id=MEMBER, reply_to_message_id=group_alert.message_id, **group
        )
        assert "2,000 Russian troops" in in_group.text
        assert in_group.reply_to_message_id is not None
        await asyncio.sleep(0.3)
        assert len(harness.server.sent(GROUP)) == 3  # subscribed, the alert, one answer

    async with harness.bot():  # the alert's articles are remembered across a restart
        again = await harness.say(question, chat_id=USER, reply_to_message_id=alert.message_id)
    assert "2,000 Russian troops" in again.text


# ---- pieces ------------------------------------------------------------------------------


async def test_test_server_answers_get_chat_member() -> None:
    async with BotApiServer(TOKEN) as server:
        server.user_sends("hi", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup")
        server.set_member_status(GROUP, ADMIN_MEMBER, "administrator")
        server.set_member_status(GROUP, ADMIN_MEMBER + 10, "creator")
        async with Bot(TOKEN, base_url=server.base_url) as bot:
            member = await bot.get_chat_member(GROUP, MEMBER)
            admin = await bot.get_chat_member(GROUP, ADMIN_MEMBER)
            owner = await bot.get_chat_member(GROUP, ADMIN_MEMBER + 10)
            me = await bot.get_chat_member(GROUP, server.bot_id)
            with pytest.raises(BadRequest, match=r"(?i)chat not found"):
                await bot.get_chat_member(-1, MEMBER)
    assert (member.status, admin.status, owner.status) == ("member", "administrator", "creator")
    assert admin.user.id == ADMIN_MEMBER and me.user.is_bot
    with pytest.raises(ValueError):
        server.set_member_status(GROUP, MEMBER, "boss")


def test_store_schema_1_is_migrated_and_remembers_alert_messages(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    store = SubscriptionStore(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE alert_messages")  # what version 1 wrote
    conn.execute("ALTER TABLE alerts DROP COLUMN claimed_by")
    conn.execute("ALTER TABLE alerts DROP COLUMN claimed_until")
    conn.execute("ALTER TABLE alerts DROP COLUMN sending")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    sub = store.add(5, TOPIC, 9)
    assert store.claim(5, "a.txt", sub.id) and store.claim(5, "b.txt", sub.id)
    store = SubscriptionStore(db)  # migrates 1 -> 4, keeping the data
    assert store.list(5) == [sub]
    ids = [p.id for p in store.pending(5)]
    assert store.mark_sent(ids, [77]) == 2
    assert store.docs_for_message(5, 77) == ["a.txt", "b.txt"]
    assert store.docs_for_message(5, 78) == [] and store.docs_for_message(6, 77) == []
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()


async def test_help_lists_the_alert_commands(harness: AlertHarness) -> None:
    async with harness.bot():
        await harness.started()
        reply = await harness.say("/help")
        assert "/ask" in reply.text
        for command in ("/subscribe", "/topics", "/unsubscribe"):
            assert command in reply.text


async def test_the_watcher_and_the_alert_rounds_are_jobs_on_the_job_queue(
    harness: AlertHarness,
) -> None:
    from bot.context import BotData

    async with harness.bot():
        await harness.started()
        names = {job.name for job in harness.app.job_queue.jobs()}
        assert {"newsdesk-index-watcher", "newsdesk-alerts-retry"} <= names
        assert isinstance(harness.app.bot_data, BotData)
        assert harness.app.bot_data.get(AlertService) is harness.alerts
