"""The bot against hostile or unlucky conditions (issue #10): a second bot process on the same
data folder, a flooding group member, forged callback data, damaged state files, a leaked
token in odd case, and a "Bot API" that does not answer JSON.

Processes are real where the fault is about processes: the alert senders below are separate
Python processes delivering to the local Bot API server (tests/botapi/server.py).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from telegram.error import TelegramError

from bot import format as fmt
from bot.handlers import APOLOGY, parse_more
from bot.state import QuestionStore
from index.subscriptions import SubscriptionStore
from tests.botapi.server import BotApiServer, BotMessage, _CallbackQuery
from tests.conftest import REPO, run_cli, wait_until
from tests.test_bot_e2e import LEASE_Q, TOKEN, USER, Harness, is_sent, make_settings

GROUP = -100600
OTHER_GROUP = -100601
ANONYMOUS_ADMIN = 1087968824  # @GroupAnonymousBot
CHATS = 24  # alert chats in the two-process test
SENDERS = 3  # bot processes delivering at once


# ---- helpers ------------------------------------------------------------------------------


@pytest.fixture
async def harness(small_corpus: Path, tmp_path: Path) -> AsyncIterator[Harness]:
    from index.embedders.hashing import HashingEmbedder

    async with BotApiServer(TOKEN) as server:
        settings = make_settings(tmp_path / "data", small_corpus, server.base_url)
        yield Harness(server, settings, HashingEmbedder(256))


def anonymous_admin_sends(server: BotApiServer, text: str, group: int) -> None:
    """What Telegram delivers when a group admin posts anonymously: from @GroupAnonymousBot,
    with the group itself as sender_chat."""
    with server._lock:  # the update is complete before any getUpdates sees it
        update = server.user_sends(
            text,
            chat_id=group,
            user_id=ANONYMOUS_ADMIN,
            chat_type="supergroup",
            title=f"Group {group}",
            username="GroupAnonymousBot",
        )
        update["message"]["sender_chat"] = {
            "id": group,
            "type": "supergroup",
            "title": f"Group {group}",
        }


def forged_click(server: BotApiServer, message: BotMessage, user_id: int, data: str) -> str:
    """A modified client sends callback data the message's buttons never had."""
    with server._lock:
        query_id = str(secrets.randbits(63))
        server._callback_queries[query_id] = _CallbackQuery(
            message.chat_id, message.message_id, data
        )
        server._queue_update(
            "callback_query",
            {
                "id": query_id,
                "from": server._user(user_id, "mallory", "Mallory"),
                "message": copy.deepcopy(
                    server._chat_messages[message.chat_id][message.message_id]
                ),
                "chat_instance": "42",
                "data": data,
            },
        )
    return query_id


def bot_env(tmp_path: Path, base_url: str, corpus: Path, **extra: str) -> dict[str, str]:
    return {
        "NEWSDESK_TELEGRAM_TOKEN": TOKEN,
        "NEWSDESK_TELEGRAM_BASE_URL": base_url,
        "NEWSDESK_DATA_DIR": str(tmp_path / "data"),
        "NEWSDESK_CORPUS_DIRS": str(corpus),
        "NEWSDESK_EMBEDDING_MODEL": "hashing",
        **extra,
    }


# ---- 6. two bot processes on one data folder ----------------------------------------------


def queue_alerts(data_dir: Path, chats: int, per_chat: int = 2) -> SubscriptionStore:
    store = SubscriptionStore.in_data_dir(data_dir)
    for chat in range(1, chats + 1):
        sub = store.add(chat, "Russian troops in Central Asia", chat)
        for n in range(per_chat):
            store.claim(chat, f"asia/{n}.txt", sub.id)  # queued (the outbox's own "claim")
    return store


def sender_process(data_dir: str, base_url: str, go_file: str, mode: str, lease: str) -> None:
    """Run in a child process: one bot's alert delivery over the same data folder.

    ``mode`` "deliver": wait for ``go_file``, then deliver what is pending; "die": take the
    alerts and die (SIGKILL-like, no clean-up) in the middle of the first send.
    """
    from telegram import Bot

    from bot.delivery import AlertSender

    store = SubscriptionStore.in_data_dir(Path(data_dir))

    async def run() -> None:
        async with Bot(TOKEN, base_url=base_url) as bot:
            if mode == "die":

                async def send_and_die(*args: Any, **kwargs: Any) -> None:
                    os._exit(9)

                bot = SimpleNamespace(send_message=send_and_die)  # type: ignore[assignment]
            kwargs: dict[str, Any] = {"lease": float(lease)} if lease else {}
            service = AlertSender(bot, store, **kwargs)
            Path(f"{go_file}.ready.{os.getpid()}").touch()
            while mode == "deliver" and not Path(go_file).exists():
                await asyncio.sleep(0.005)
            await service.deliver()

    asyncio.run(run())


async def start_sender(
    data_dir: Path, base_url: str, go_file: Path, mode: str = "deliver", lease: str = ""
) -> asyncio.subprocess.Process:
    code = (
        "import sys; from tests.test_hostile_bot import sender_process; "
        "sender_process(*sys.argv[1:])"
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        str(data_dir),
        base_url,
        str(go_file),
        mode,
        lease,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def alert_messages(server: BotApiServer) -> dict[int, int]:
    counts: dict[int, int] = {}
    for message in server.sent():
        if message.text.startswith(("New article", "2 new")):
            counts[message.chat_id] = counts.get(message.chat_id, 0) + 1
    return counts


async def test_bot_processes_on_one_data_folder_deliver_each_alert_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = queue_alerts(data, CHATS)
    go = tmp_path / "go"
    async with BotApiServer(TOKEN) as server:
        senders = [await start_sender(data, server.base_url, go) for _ in range(SENDERS)]
        await wait_until(lambda: len(list(tmp_path.glob("go.ready.*"))) == SENDERS, 60)
        go.touch()  # all at once
        results = [await p.communicate() for p in senders]
        for process, (_, err) in zip(senders, results, strict=True):
            assert process.returncode == 0, err.decode()
        counts = alert_messages(server)
    assert counts == {chat: 1 for chat in range(1, CHATS + 1)}  # one digest per chat, once
    assert store.pending() == [] and store.sent_count() == 2 * CHATS


async def test_alerts_held_by_a_sender_that_died_go_out_once_its_lease_ends(
    tmp_path: Path,
) -> None:
    from telegram import Bot

    from bot.delivery import AlertSender

    data = tmp_path / "data"
    store = queue_alerts(data, 1)
    async with BotApiServer(TOKEN) as server:
        dying = await start_sender(data, server.base_url, tmp_path / "go", "die", "3")
        await dying.communicate()
        assert dying.returncode == 9  # died inside send_message, holding the alerts
        async with Bot(TOKEN, base_url=server.base_url) as bot:
            other = AlertSender(bot, store, lease=3)
            report = await other.deliver()
            assert report.messages == 0 and alert_messages(server) == {}  # still held
            await asyncio.sleep(3.1)
            report = await other.deliver()
            assert report.messages == 1
            assert (await other.deliver()).messages == 0
        assert alert_messages(server) == {1: 1}
    assert store.pending() == [] and store.sent_count() == 2


# ---- 8. rate limits ------------------------------------------------------------------------


async def test_a_flooding_member_costs_the_group_one_notice_and_others_are_answered(
    harness: Harness,
) -> None:
    group = {"chat_id": GROUP, "chat_type": "supergroup", "title": "Newsroom"}
    flooder, other = USER + 10, USER + 11
    async with harness.bot():
        for _ in range(12):  # the limit is 3 a minute
            harness.server.user_sends(f"/ask {LEASE_Q}", user_id=flooder, **group)
        await wait_until(lambda: len(harness.server.calls("sendMessage")) >= 4, 20)
        await asyncio.sleep(0.5)
        harness.server.skip_messages(GROUP)
        answer = await harness.say(f"/ask {LEASE_Q}", user_id=other, **group)
        assert "2042" in answer.text
        await asyncio.sleep(0.3)
    texts = [m.text for m in harness.server.sent(GROUP)]
    notices = [t for t in texts if "asking faster than I can look things up" in t]
    assert len(notices) == 1, texts  # not one per refused message
    assert len(texts) == 3 + 1 + 1


async def test_anonymous_admins_of_different_groups_do_not_share_a_limit(
    harness: Harness,
) -> None:
    async with harness.bot():
        for _ in range(3):
            anonymous_admin_sends(harness.server, f"/ask {LEASE_Q}", GROUP)
            reply = await harness.server.wait_for_message(GROUP, is_sent, timeout=20)
            assert "2042" in reply.text
        anonymous_admin_sends(harness.server, f"/ask {LEASE_Q}", OTHER_GROUP)
        elsewhere = await harness.server.wait_for_message(OTHER_GROUP, is_sent, timeout=20)
        assert "2042" in elsewhere.text  # another group's admin, another bucket
        anonymous_admin_sends(harness.server, f"/ask {LEASE_Q}", GROUP)
        limited = await harness.server.wait_for_message(GROUP, is_sent, timeout=20)
        assert "asking faster than I can look things up" in limited.text  # still limited


# ---- 9. smaller ones -----------------------------------------------------------------------


async def test_a_more_sources_key_works_only_in_the_chat_that_asked(harness: Harness) -> None:
    intruder = USER + 20
    async with harness.bot():
        asked = await harness.say(LEASE_Q)
        key = asked.callback_data[0].split(":")[1]
        own = await harness.say("who scored for Rangers at Celtic Park?", chat_id=intruder)
        query = forged_click(harness.server, own, intruder, f"more:{key}:1")
        refused = await harness.callback_answer(query)
        assert refused["text"] == fmt.EXPIRED
        await asyncio.sleep(0.3)
        assert len(harness.server.sent(intruder)) == 1  # no sources of the other chat's question
        await harness.click(asked)  # the asker's own button still works
        more = await harness.server.wait_for_message(USER, is_sent)
    assert more.text.startswith("More sources (1–")


def test_question_keys_are_tied_to_their_chat(tmp_path: Path) -> None:
    store = QuestionStore(tmp_path / "state.sqlite3", ttl=3600)
    key = store.put(LEASE_Q, ("tca/base.txt", 120), chat_id=5)
    assert store.put(LEASE_Q, ("tca/base.txt", 120), chat_id=6) != key  # no shared keys
    assert store.get(key, chat_id=6) is None
    got = store.get(key, chat_id=5)
    assert got is not None and got.question == LEASE_Q
    store.close()


def test_callback_data_with_unicode_digits_is_refused() -> None:
    for data in ("more:abc:²", "more:abc:٣", "more:abc:1²", "more:abc:" + "9" * 40):
        assert parse_more(data) is None, data


async def test_unicode_digits_in_topic_buttons_and_commands_get_a_plain_answer(
    harness: Harness,
) -> None:
    from bot.alerts import alerts_plugin

    async with harness.bot([alerts_plugin(threshold=0.15, retry_interval=0.3)]):
        listing = await harness.say("/subscribe Russian troops in Central Asia")
        removed = await harness.say("/unsubscribe ²")
        assert "not followed in this chat" in removed.text
        query = forged_click(harness.server, listing, USER, "alerts:rm:²")
        answer = await harness.callback_answer(query)
        assert answer["text"] != APOLOGY
        topics = await harness.say("/topics")
    assert "Russian troops in Central Asia" in topics.text


@pytest.mark.parametrize("name", ["bot_state.sqlite3", "alerts.sqlite3"])
def test_a_damaged_state_file_is_one_line_naming_it(
    tmp_path: Path, small_corpus: Path, name: str
) -> None:
    damaged = tmp_path / "data" / name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"this is not a database, it was overwritten " * 200)
    with BotApiServer(TOKEN) as server:
        done = run_cli("bot", env=bot_env(tmp_path, server.base_url, small_corpus), timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("newsdesk bot:"))
    assert str(damaged) in line and "damaged" in line


def test_opening_a_damaged_store_raises_our_error_naming_the_file(tmp_path: Path) -> None:
    from index.errors import NewsdeskError

    for path, opener in (
        (tmp_path / "q.sqlite3", lambda p: QuestionStore(p, ttl=60)),
        (tmp_path / "a.sqlite3", SubscriptionStore),
    ):
        path.write_bytes(b"\x00garbage" * 1000)
        with pytest.raises(NewsdeskError, match=str(path)):
            opener(path)


def test_a_lower_cased_token_is_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    from bot.logs import RedactFilter

    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    redact = RedactFilter([token])
    caplog.handler.addFilter(redact)
    try:
        logging.getLogger("test.redact").error("GET http://x/bot%s/getMe: 404", token.lower())
        logging.getLogger("test.redact").error("and %s", token.upper())
    finally:
        caplog.handler.removeFilter(redact)
    assert token.lower() not in caplog.text.lower()
    assert caplog.text.count("[redacted]") == 2


class HtmlApi:
    """Something at the Bot API address that answers HTML (a proxy's error page, a portal)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> HtmlApi:
        async def page(request: web.Request) -> web.Response:
            body = "<html><body><h1>Welcome to the hotel Wi-Fi</h1>\n<p>Log in</p></body></html>"
            return web.Response(text=body, status=self.status, content_type="text/html")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", page)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/bot"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.mark.parametrize("status", [200, 404, 502])
async def test_a_bot_api_answering_html_is_one_clear_line(
    tmp_path: Path, small_corpus: Path, status: int
) -> None:
    async with HtmlApi(status) as api:
        env = bot_env(tmp_path, api.base_url, small_corpus)
        done = await asyncio.to_thread(run_cli, "bot", env=env, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err and "hotel" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("newsdesk bot:") and api.base_url in lines[0]
    assert "not JSON" in lines[0]


async def test_a_non_json_answer_while_running_is_logged_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.handlers import on_error

    try:
        try:
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        except ValueError as cause:
            raise TelegramError("Invalid server response") from cause
    except TelegramError as exc:
        error = exc
    context = SimpleNamespace(error=error)
    with caplog.at_level(logging.WARNING, logger="bot.handlers"):
        await on_error(None, context)  # type: ignore[arg-type]
    [record] = caplog.records
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert "not JSON" in record.getMessage()
