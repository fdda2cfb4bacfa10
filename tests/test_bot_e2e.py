"""End to end: the real bot Application against the local Bot API server, driven as a user.

The bot long-polls tests/botapi/server.py on 127.0.0.1 exactly as it would poll Telegram;
the tests queue user messages and button clicks there and read what the bot sent. The
hashing embedder keeps these fast; one test uses the real model on the sample corpus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import CommandHandler

from bot import format as fmt
from bot.app import build_application, running, webhook_options
from bot.context import get_services
from bot.plugins import BotPlugin
from bot.services import STATE_FILE, BotServices
from index.embedders import Embedder
from index.embedders.hashing import HashingEmbedder
from newsdesk.settings import SAMPLE_CORPUS, BotSettings
from tests.botapi.server import BotApiServer, BotMessage
from tests.conftest import run_cli, wait_until
from tests.servers import free_port

TOKEN = "123:TEST"
ADMIN = 1001
USER = 2002
GROUP = -100500
LEASE_Q = "when does the base lease end?"
MARS_TITLE = "Mars rover finds ancient lake bed"
MARS_Q = "how long ago did a lake fill the Jezero crater?"


def is_sent(message: BotMessage) -> bool:
    return message.event == "sent"


class Harness:
    """The server, the settings and a way to (re)start the bot on them."""

    def __init__(self, server: BotApiServer, settings: BotSettings, embedder: Embedder) -> None:
        self.server = server
        self.settings = settings
        self.embedder = embedder
        self.app: Any = None

    @asynccontextmanager
    async def bot(self, plugins: list[BotPlugin] | None = None) -> AsyncIterator[Any]:
        app = build_application(self.settings, plugins=plugins or [], embedder=self.embedder)
        async with running(app, poll_timeout=2) as self.app:
            yield app

    @property
    def services(self) -> BotServices:
        return get_services(self.app)

    async def say(
        self, text: str, *, chat_id: int = USER, user_id: int | None = None, **kw: Any
    ) -> BotMessage:
        """Send as a user; return the bot's next message in that chat."""
        self.server.user_sends(text, chat_id=chat_id, user_id=user_id or chat_id, **kw)
        return await self.server.wait_for_message(chat_id, is_sent, timeout=20)

    async def click(self, message: BotMessage, *, user_id: int = USER) -> str:
        """Click the message's first button; return the callback query id."""
        update = self.server.user_clicks(
            message.chat_id, user_id, message.message_id, message.callback_data[0]
        )
        return update["callback_query"]["id"]

    async def callback_answer(self, query_id: str) -> dict[str, Any]:
        return await wait_until(lambda: self.server.callback_answer(query_id))


def make_settings(data_dir: Path, corpus: Path, base_url: str, **overrides: Any) -> BotSettings:
    values: dict[str, Any] = {
        "telegram_token": TOKEN,
        "telegram_base_url": base_url,
        "data_dir": data_dir,
        "corpus_dirs": [corpus],
        "embedding_model": "hashing",
        "admin_ids": [ADMIN],
        "bot_reload_interval": 0.3,
        "bot_rate_limit": 3,
        "bot_rate_window": 60,
        **overrides,
    }
    return BotSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def harness(small_corpus: Path, tmp_path: Path) -> AsyncIterator[Harness]:
    async with BotApiServer(TOKEN) as server:
        settings = make_settings(tmp_path / "data", small_corpus, server.base_url)
        yield Harness(server, settings, HashingEmbedder(256))


def link_urls(message: BotMessage) -> list[str]:
    return [e["url"] for e in message.entities if e["type"] == "text_link"]


# ---- asking -----------------------------------------------------------------------------


async def test_question_gets_the_quote_and_its_source(harness: Harness) -> None:
    async with harness.bot():
        reply = await harness.say(LEASE_Q)
    assert reply.parse_mode == "HTML"
    assert "until 2042" in reply.text
    assert "<blockquote>" in (reply.html or "")
    assert "Russian defense minister visits Dushanbe · The Times of Central Asia" in reply.text
    assert link_urls(reply)[0] == "https://example.org/tca/1"
    assert "Also in the archive" in reply.text
    assert [b["text"] for b in reply.buttons] == ["More sources"]
    actions = harness.server.calls("sendChatAction")
    assert actions and actions[0].params["action"] == "typing"
    assert actions[0].params["chat_id"] == USER


async def test_commands_menu_is_registered_with_reindex_for_admins_only(harness: Harness) -> None:
    async with harness.bot():
        public = [c["command"] for c in harness.server.commands()]
        admin = [c["command"] for c in harness.server.commands({"type": "chat", "chat_id": ADMIN})]
    assert public == ["ask", "help", "stats"]
    assert admin == ["ask", "help", "stats", "reindex"]


async def test_more_sources_follows_up_and_survives_a_restart(harness: Harness) -> None:
    async with harness.bot():
        first = await harness.say(LEASE_Q)
        second = await harness.say("who scored for Rangers at Celtic Park?")
        await harness.click(first)
        more = await harness.server.wait_for_message(USER, is_sent)
        assert more.text.startswith("More sources (1–")
        assert "Rangers win Old Firm derby" in more.text
        assert more.reply_to_message_id is None or more.reply_to_message_id == first.message_id
        # the clicked button is gone (one click per button)
        await wait_until(lambda: not harness.server.sent(USER)[0].buttons)

    async with harness.bot():  # a new process, same data dir
        await harness.click(second)
        after = await harness.server.wait_for_message(USER, is_sent)
    assert after.text.startswith("More sources (1–")
    assert "Russian defense minister" in after.text or "Cell chip" in after.text


async def test_more_sources_of_a_forgotten_question_says_it_expired(harness: Harness) -> None:
    async with harness.bot():
        answer = await harness.say(LEASE_Q)
    (harness.settings.data_dir / STATE_FILE).unlink()
    async with harness.bot():
        query = await harness.click(answer)
        reply = await harness.callback_answer(query)
    assert reply["text"] == fmt.EXPIRED
    assert reply["show_alert"] in (True, "true")


async def test_unanswerable_question_is_declined_with_related_articles(harness: Harness) -> None:
    async with harness.bot():
        reply = await harness.say("what is the weather like on Jupiter?")
    assert reply.text.startswith("I couldn't find the answer to “what is the weather like")
    assert "Closest articles" in reply.text
    assert "<blockquote>" not in (reply.html or "")


async def test_huge_and_html_questions_get_sensible_replies(harness: Harness) -> None:
    async with harness.bot():
        long_reply = await harness.say("why" * 3333 + "?")  # 10,000 characters
        nasty = '<b>What</b> is <i>the</i> capital of Mars & Venus? <script>alert("x")</script>'
        html_reply = await harness.say(nasty)
        empty_reply = await harness.say("?!? ...")
    assert "10,000 characters long" in long_reply.text and "under 500" in long_reply.text
    assert nasty in html_reply.text  # echoed literally, escaped on the wire
    assert "&lt;script&gt;" in (html_reply.html or "")
    assert "no words" in empty_reply.text


async def test_non_text_and_unknown_commands_in_private(harness: Harness) -> None:
    async with harness.bot():
        unknown = await harness.say("/frobnicate")
        start = await harness.say("/start")
        stats = await harness.say("/stats")
    assert "Try /help" in unknown.text
    assert "Ask the news archive" in start.text
    assert "What does the archive say about" in start.text  # drawn from the index's titles
    assert "/reindex" not in start.text
    assert "Articles: 3" in stats.text and "Index: v000001" in stats.text


# ---- admin and re-index -----------------------------------------------------------------


async def test_reindex_is_refused_to_others_and_works_for_admins(
    harness: Harness, write_article: Callable[..., Path]
) -> None:
    async with harness.bot():
        refused = await harness.say("/reindex")
        assert "only the bot's admins" in refused.text
        write_article(
            "space/mars.txt",
            MARS_TITLE,
            "The Perseverance rover found clay minerals in Jezero crater, scientists said, "
            "showing that a lake filled the crater about 3.5 billion years ago.",
            headers={"Source": "Space Daily"},
        )
        started = await harness.say("/reindex", chat_id=ADMIN)
        assert "Re-indexing" in started.text
        done = await harness.server.wait_for_message(ADMIN, is_sent, timeout=30)
        assert "Re-index finished" in done.text
        assert "added 1, changed 0, removed 0" in done.text
        assert "Answering from index v000002" in done.text
        answer = await harness.say(MARS_Q, chat_id=ADMIN)
    assert MARS_TITLE in answer.text and "Space Daily" in answer.text


async def test_reindex_by_another_process_is_picked_up_without_restart(
    harness: Harness, write_article: Callable[..., Path]
) -> None:
    async with harness.bot():
        before = await harness.say(MARS_Q)
        assert MARS_TITLE not in before.text
        old_engine = harness.services.engine
        write_article(
            "space/mars.txt",
            MARS_TITLE,
            "The Perseverance rover found clay minerals in Jezero crater, scientists said, "
            "showing that a lake filled the crater about 3.5 billion years ago.",
            headers={"Source": "Space Daily"},
        )
        env = {
            "NEWSDESK_EMBEDDING_MODEL": "hashing",
            "NEWSDESK_DATA_DIR": str(harness.settings.data_dir),
            "NEWSDESK_CORPUS_DIRS": str(harness.settings.corpus_dirs[0]),
        }
        done = await asyncio.to_thread(run_cli, "reindex", "--quiet", env=env, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        await wait_until(lambda: harness.services.engine is not old_engine, timeout=10)
        after = await harness.say(MARS_Q, user_id=USER + 1)
    assert MARS_TITLE in after.text  # quoted, or at least offered: the bot knows it now


# ---- groups, limits, errors -------------------------------------------------------------


async def test_group_answers_ask_mentions_and_replies_but_ignores_chatter(
    harness: Harness,
) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup", "title": "Newsroom"}
    async with harness.bot():
        harness.server.user_sends("when does the base lease end?", user_id=USER, **group)
        harness.server.user_sends("/help@some_other_bot", user_id=USER, **group)
        asked = await harness.say(
            f"/ask@{harness.server.bot_username} {LEASE_Q}", user_id=USER, **group
        )
        assert "until 2042" in asked.text  # the chatter before it got no reply
        assert asked.reply_to_message_id is not None
        mentioned = await harness.say(
            f"@{harness.server.bot_username} how many troops are stationed in Tajikistan?",
            user_id=USER + 1,
            **group,
        )
        assert "7,000 troops" in mentioned.text
        other = harness.server.user_sends("nice weather today", user_id=USER + 2, **group)
        harness.server.user_sends(
            "who scored?",
            user_id=USER + 3,
            reply_to_message_id=other["message"]["message_id"],
            **group,
        )
        replied = await harness.say(
            "who scored the only goal for Rangers?",
            user_id=USER + 4,
            reply_to_message_id=asked.message_id,
            **group,
        )
        assert "Nacho Novo" in replied.text
    assert len(harness.server.sent(GROUP)) == 3


async def test_per_user_rate_limit_has_a_clear_reply(harness: Harness) -> None:
    async with harness.bot():
        for _ in range(3):
            ok = await harness.say(LEASE_Q)
            assert "2042" in ok.text
        limited = await harness.say(LEASE_Q)
        assert "asking faster than I can look things up" in limited.text
        other_user = await harness.say(LEASE_Q, chat_id=USER + 9)
        assert "2042" in other_user.text
        for _ in range(4):  # admins are not limited
            assert "2042" in (await harness.say(LEASE_Q, chat_id=ADMIN)).text


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")  # inside PTB's limiter
async def test_telegram_flood_limit_is_waited_out(harness: Harness) -> None:
    async with harness.bot():
        harness.server.flood(1, retry_after=1)
        started = time.monotonic()
        reply = await harness.say(LEASE_Q)
    assert "2042" in reply.text
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in harness.server.calls("sendMessage")][:2] == [429, 200]


async def test_plugins_add_handlers_commands_and_hooks_and_errors_get_an_apology(
    harness: Harness, write_article: Callable[..., Path]
) -> None:
    events: list[str] = []

    async def boom(update: Any, context: Any) -> None:
        raise RuntimeError("kaboom")

    async def on_start(app: Any) -> None:
        events.append(f"start {get_services(app).engine.index.version}")

    async def on_swap(app: Any, old: Any, new: Any) -> None:
        events.append(f"swap {old.index.version}->{new.index.version}")

    plugin = BotPlugin(
        "test",
        setup=lambda app: app.add_handler(CommandHandler("boom", boom)),
        on_start=on_start,
        on_index_swap=on_swap,
        commands=[("boom", "Fail on purpose")],
    )
    async with harness.bot([plugin]):
        assert "boom" in [c["command"] for c in harness.server.commands()]
        reply = await harness.say("/boom")
        assert reply.text == "Sorry, something went wrong on my side. Please try again in a moment."
        write_article("x/new.txt", "A new article", "Something new happened on Tuesday.")
        await harness.say("/reindex", chat_id=ADMIN)
        await harness.server.wait_for_message(ADMIN, is_sent, timeout=30)
    assert events == ["start v000001", "swap v000001->v000002"]
    assert harness.app.bot_data.services is None  # closed at shutdown


# ---- webhook mode ------------------------------------------------------------------------


async def test_webhook_mode_checks_telegrams_secret_token(
    small_corpus: Path, tmp_path: Path
) -> None:
    import aiohttp

    port = free_port()
    async with BotApiServer(TOKEN) as server:
        settings = make_settings(
            tmp_path / "data",
            small_corpus,
            server.base_url,
            telegram_webhook_url="https://bot.example.org/telegram/hook",
            telegram_webhook_port=port,
        )
        app = build_application(settings, embedder=HashingEmbedder(256))
        options = webhook_options(settings, "s3cret-Token_1")
        async with running(app, webhook=options):
            set_hook = server.calls("setWebhook")[0].params
            assert set_hook["url"] == "https://bot.example.org/telegram/hook"
            assert set_hook["secret_token"] == "s3cret-Token_1"
            update = server.user_sends(LEASE_Q, chat_id=USER, user_id=USER)
            url = f"http://127.0.0.1:{port}/telegram/hook"
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=update) as forged:
                    assert forged.status == 403
                headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"}
                async with http.post(url, json=update, headers=headers) as real:
                    assert real.status == 200
            reply = await server.wait_for_message(USER, is_sent, timeout=20)
    assert "until 2042" in reply.text
    assert len(server.sent(USER)) == 1  # the forged post was not answered


# ---- the real model ---------------------------------------------------------------------


@pytest.mark.model
async def test_real_model_answers_the_sample_question(tmp_path: Path, real_embedder: Any) -> None:
    async with BotApiServer(TOKEN) as server:
        settings = make_settings(
            tmp_path / "data", SAMPLE_CORPUS, server.base_url, embedding_model="all-MiniLM-L6-v2"
        )
        harness = Harness(server, settings, real_embedder)
        async with harness.bot():
            reply = await harness.say(LEASE_Q)
    assert "2042" in reply.text
    assert "The Times of Central Asia" in reply.text
    assert "<blockquote>" in (reply.html or "")
