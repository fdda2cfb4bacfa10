"""The local Bot API test server, driven by a real python-telegram-bot ``Bot``/``Application``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
)
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

from tests.botapi import BOT_USERNAME, BotApiServer, parse_html
from tests.botapi.server import EntityParseError

TOKEN = "123:TEST"
CHAT = 4242
USER = 4242
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[BotApiServer]:
    async with BotApiServer(token=TOKEN) as srv:
        yield srv


@pytest_asyncio.fixture
async def bot(server: BotApiServer) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.base_file_url) as b:
        yield b


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d.title(), callback_data=d) for d in data]])


# ----------------------------------------------------------------------------- basic methods


@pytest.mark.asyncio
async def test_get_me(bot: Bot, server: BotApiServer) -> None:
    me = await bot.get_me()
    assert me.username == BOT_USERNAME
    assert me.is_bot and me.id == 123
    assert me.can_join_groups is True
    assert me.supports_inline_queries is False
    assert server.calls("getMe")


@pytest.mark.asyncio
async def test_send_message_html(bot: Bot, server: BotApiServer) -> None:
    html = "<b>Top story</b> &amp; <i>more</i>\n<a href='https://example.org/?a=1&amp;b=2'>link</a>"
    message = await bot.send_message(
        CHAT,
        html,
        parse_mode="HTML",
        reply_markup=keyboard("next"),
        disable_notification=True,
    )
    assert message.text == "Top story & more\nlink"
    assert message.message_id == 1
    assert message.chat.id == CHAT
    assert message.from_user is not None and message.from_user.username == BOT_USERNAME
    types = [(e.type, e.offset, e.length) for e in message.entities]
    assert types == [("bold", 0, 9), ("italic", 12, 4), ("text_link", 17, 4)]
    assert message.entities[2].url == "https://example.org/?a=1&b=2"
    assert message.reply_markup == keyboard("next")

    [sent] = server.sent(CHAT)
    assert sent.html == html and sent.parse_mode == "HTML"
    assert sent.text == "Top story & more\nlink"
    assert sent.callback_data == ["next"]
    assert sent.disable_notification is True
    # PTB sends form data: every non-str value is JSON encoded, str values verbatim.
    params = server.calls("sendMessage")[0].params
    assert params["chat_id"] == CHAT and params["text"] == html
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "next"

    second = await bot.send_message(CHAT, "123")  # a numeric text must stay a string
    assert second.text == "123" and second.message_id == 2


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("AT&T", 'Unescaped "&" at byte offset 2; escape it as &amp; (strict test server)'),
        ("<b", "Unclosed start tag at byte offset 0"),
    ],
)
@pytest.mark.asyncio
async def test_malformed_html_is_rejected(
    bot: Bot, server: BotApiServer, html: str, reason: str
) -> None:
    with pytest.raises(BadRequest) as excinfo:
        await bot.send_message(CHAT, html, parse_mode="HTML")
    # PTB strips "Bad Request: " and str.capitalize()s the rest, lowercasing it.
    assert excinfo.value.message == f"Can't parse entities: {reason}".capitalize()
    assert server.sent() == []
    call = server.calls("sendMessage")[-1]
    assert call.status == 400
    assert call.response["description"] == f"Bad Request: can't parse entities: {reason}"


@pytest.mark.asyncio
async def test_text_length_is_measured_after_entity_parsing(bot: Bot) -> None:
    visible = "&amp;" * 4096  # 20480 raw characters, 4096 visible ones
    message = await bot.send_message(CHAT, f"<b>{visible}</b>", parse_mode="HTML")
    assert message.text == "&" * 4096
    with pytest.raises(BadRequest, match=r"(?i)too long"):
        await bot.send_message(CHAT, "<b>" + "x" * 4097 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)too long"):
        await bot.send_message(CHAT, "y" * 4097)


@pytest.mark.asyncio
async def test_empty_text_is_rejected(bot: Bot) -> None:
    for text in ("   \n", "<b> </b>"):
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(CHAT, text, parse_mode="HTML")


@pytest.mark.asyncio
async def test_replies_and_link_preview(bot: Bot, server: BotApiServer) -> None:
    update = server.user_sends("hello", chat_id=CHAT, user_id=USER)
    user_message_id = update["message"]["message_id"]
    reply = await bot.send_message(
        CHAT,
        "hi",
        reply_to_message_id=user_message_id,
        link_preview_options={"is_disabled": True},
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "hello"
    assert server.sent(CHAT)[0].reply_to_message_id == user_message_id
    assert server.sent(CHAT)[0].link_preview_options == {"is_disabled": True}
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(CHAT, "hi", reply_to_message_id=999)


# ----------------------------------------------------------------------------- updates


@pytest.mark.asyncio
async def test_get_updates_long_poll_and_offset(bot: Bot, server: BotApiServer) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert time.monotonic() - started >= 0.9  # waited for the long-poll timeout

    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    assert not poll.done()
    started = time.monotonic()
    server.user_sends("/search climate", chat_id=CHAT, user_id=USER)
    updates = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 1  # woken immediately, not at the timeout
    [update] = updates
    assert update.message is not None
    assert update.message.text == "/search climate"
    assert update.message.from_user is not None and update.message.from_user.id == USER
    entity = update.message.entities[0]
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 7)

    # Not acknowledged yet: fetched again. A later offset acknowledges it.
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [update.update_id]
    server.user_sends(f"@{BOT_USERNAME} hi", chat_id=-100, user_id=USER, chat_type="group")
    later = await bot.get_updates(offset=update.update_id + 1, timeout=0)
    assert [u.update_id for u in later] == [update.update_id + 1]
    assert later[0].message is not None and later[0].message.entities[0].type == "mention"
    assert [u["update_id"] for u in server.pending_updates()] == [update.update_id + 1]

    server.user_sends("a", chat_id=CHAT, user_id=USER)
    server.user_sends("b", chat_id=CHAT, user_id=USER)
    assert len(await bot.get_updates(offset=later[0].update_id + 1, limit=1)) == 1


@pytest.mark.asyncio
async def test_second_poller_terminates_the_first_with_conflict(server: BotApiServer) -> None:
    # Two bots (PTB's getUpdates connection pool has a single connection per Bot).
    async with (
        Bot(TOKEN, base_url=server.base_url) as first,
        Bot(TOKEN, base_url=server.base_url) as second,
    ):
        old_poll = asyncio.create_task(first.get_updates(timeout=10))
        await asyncio.sleep(0.1)
        new_poll = asyncio.create_task(second.get_updates(timeout=10))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(old_poll, 5)
        server.user_sends("hi", chat_id=CHAT, user_id=USER)
        assert len(await asyncio.wait_for(new_poll, 5)) == 1


@pytest.mark.asyncio
async def test_allowed_updates_filter(bot: Bot, server: BotApiServer) -> None:
    sent = await bot.send_message(CHAT, "pick", reply_markup=keyboard("a"))
    server.user_clicks(CHAT, USER, sent.message_id, "a")
    server.user_sends("text", chat_id=CHAT, user_id=USER)
    updates = await bot.get_updates(allowed_updates=["message"], timeout=0)
    assert [u.message.text for u in updates if u.message] == ["text"]
    assert all(u.callback_query is None for u in updates)


# ----------------------------------------------------------------------------- edits, buttons


@pytest.mark.asyncio
async def test_edit_message_text(bot: Bot, server: BotApiServer) -> None:
    sent = await bot.send_message(
        CHAT, "<b>page 1</b>", parse_mode="HTML", reply_markup=keyboard("n")
    )
    first = await server.wait_for_message(CHAT)
    assert first.event == "sent" and first.text == "page 1"

    edited = await bot.edit_message_text(
        "<i>page 2</i>",
        chat_id=CHAT,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=keyboard("p"),
    )
    assert not isinstance(edited, bool)
    assert edited.text == "page 2" and edited.edit_date is not None
    event = await server.wait_for_message(CHAT)
    assert event.event == "edited" and event.html == "<i>page 2</i>"
    assert event.callback_data == ["p"]

    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<i>page 2</i>",
            chat_id=CHAT,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=keyboard("p"),
        )
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.edit_message_text(
            "<i>x", chat_id=CHAT, message_id=sent.message_id, parse_mode="HTML"
        )
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=99)

    # Like Telegram, editing the text without reply_markup drops the inline keyboard.
    await bot.edit_message_text(
        "<i>page 2</i>", chat_id=CHAT, message_id=sent.message_id, parse_mode="HTML"
    )
    [record] = server.sent(CHAT)
    assert record.reply_markup is None and len(record.history) == 2
    assert [v.text for v in record.history] == ["page 1", "page 2"]

    assert await bot.delete_message(CHAT, sent.message_id) is True
    assert record.deleted
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)


@pytest.mark.asyncio
async def test_callback_query_round_trip(bot: Bot, server: BotApiServer) -> None:
    sent = await bot.send_message(CHAT, "More?", reply_markup=keyboard("more", "stop"))
    with pytest.raises(ValueError, match="no button"):
        server.user_clicks(CHAT, USER, sent.message_id, "nope")
    server.user_clicks(CHAT, USER, sent.message_id, "more")
    [update] = await bot.get_updates(timeout=2)
    query = update.callback_query
    assert query is not None and query.data == "more"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.from_user.id == USER

    assert await bot.answer_callback_query(query.id, text="Loading…") is True
    assert server.callback_answer(query.id) == {"text": "Loading…"}
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query.id)


@pytest.mark.asyncio
async def test_commands_and_chat_action(bot: Bot, server: BotApiServer) -> None:
    commands = [BotCommand("search", "Search the archive"), BotCommand("help", "Help")]
    assert await bot.set_my_commands(commands) is True
    assert await bot.get_my_commands() == tuple(commands)
    assert server.commands() == [
        {"command": "search", "description": "Search the archive"},
        {"command": "help", "description": "Help"},
    ]
    assert await bot.get_my_commands(language_code="de") == ()
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])
    assert await bot.send_chat_action(CHAT, "typing") is True
    assert server.calls("sendChatAction")[0].params["action"] == "typing"


# ----------------------------------------------------------------------------- failure modes


@pytest.mark.asyncio
async def test_blocked_chat_is_forbidden(bot: Bot, server: BotApiServer) -> None:
    server.block(CHAT)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hello")
    server.unblock(CHAT)
    assert (await bot.send_message(CHAT, "hello")).text == "hello"


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_control_answers_429(bot: Bot, server: BotApiServer) -> None:
    server.flood(2, retry_after=1)
    for _ in range(2):
        with pytest.raises(RetryAfter, match="Retry in 1 seconds"):
            await bot.send_message(CHAT, "hello")
    assert server.calls("sendMessage")[0].response["parameters"] == {"retry_after": 1}
    assert (await bot.send_message(CHAT, "hello")).message_id == 1


@pytest.mark.asyncio
async def test_unknown_method_wrong_token_and_json_bodies(server: BotApiServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.api_url}/sendSticker") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.post(f"{server.base_url}999:WRONG/getMe") as resp:
            assert resp.status == 401
        payload = {"chat_id": CHAT, "text": "<b>json</b>", "parse_mode": "HTML"}
        async with http.post(f"{server.api_url}/sendMessage", json=payload) as resp:
            body = await resp.json()
            assert body["ok"] is True and body["result"]["text"] == "json"
        form = {"chat_id": str(CHAT), "text": "<b>x</i>", "parse_mode": "HTML"}
        async with http.post(f"{server.api_url}/sendMessage", data=form) as resp:
            body = await resp.json()
            assert resp.status == 400 and body["error_code"] == 400
            assert body["description"].startswith("Bad Request: can't parse entities:")
        async with http.get(f"{server.api_url}/getMe") as resp:
            assert (await resp.json())["result"]["username"] == BOT_USERNAME


@pytest.mark.asyncio
async def test_ptb_maps_404_and_401(server: BotApiServer, bot: Bot) -> None:
    # PTB turns any 404 into InvalidToken; after initialize() do_api_request reports it as
    # EndPointNotFound instead.
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    wrong = Bot("999:WRONG", base_url=server.base_url)
    try:
        with pytest.raises(InvalidToken):  # 401 Unauthorized
            await wrong.initialize()
    finally:
        await wrong.shutdown()


# ----------------------------------------------------------------------------- HTML parser


def test_parse_html_details() -> None:
    text, entities = parse_html(
        '📰 <b>x<i>y</i></b> <pre><code class="language-python">a&lt;b</code></pre>'
        " <tg-spoiler>s</tg-spoiler> <blockquote expandable>q</blockquote> &#x27;&#39;&quot"
    )
    assert text == "📰 xy a<b s q ''\""
    assert entities == [
        {"type": "bold", "offset": 3, "length": 2},  # the emoji is 2 UTF-16 code units
        {"type": "italic", "offset": 4, "length": 1},
        {"type": "pre", "offset": 6, "length": 3, "language": "python"},
        {"type": "spoiler", "offset": 10, "length": 1},
        {"type": "expandable_blockquote", "offset": 12, "length": 1},
    ]
    assert parse_html("AT&T", strict_ampersand=False) == ("AT&T", [])
    assert parse_html("&nbsp;", strict_ampersand=False)[0] == "&nbsp;"  # not decoded by Telegram
    with pytest.raises(EntityParseError):
        parse_html("&nbsp;")
    assert parse_html("<B>x</b>")[1] == [{"type": "bold", "offset": 0, "length": 1}]


# ----------------------------------------------------------------------------- end to end


@pytest.mark.asyncio
async def test_application_polling_end_to_end(server: BotApiServer) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            "<b>echo:</b> " + " ".join(context.args or []), parse_mode="HTML"
        )

    app: Application = (  # type: ignore[type-arg]
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(server.base_url)
        .base_file_url(server.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("echo", echo))
    started = time.monotonic()
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        server.user_sends("/echo hello world", chat_id=CHAT, user_id=USER)
        reply = await server.wait_for_message(CHAT, timeout=5)
        assert reply.text == "echo: hello world"
        assert reply.html == "<b>echo:</b> hello world"
        assert reply.reply_to_message_id is None  # reply_text does not quote by default

        server.user_sends(
            f"/echo@{BOT_USERNAME} group", chat_id=-1001, user_id=USER, chat_type="supergroup"
        )
        reply = await server.wait_for_message(-1001, lambda m: "group" in m.text, timeout=5)
        assert reply.text == "echo: group"
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert time.monotonic() - started < 5
    assert server.calls("deleteWebhook") and server.calls("getMe")
    assert server.pending_updates() == []  # the final getUpdates acknowledged everything


def test_threaded_server_with_sync_api() -> None:
    with BotApiServer(TOKEN) as server:
        update = server.user_sends("/start", chat_id=CHAT, user_id=USER)

        async def bot_side() -> None:
            async with Bot(TOKEN, base_url=server.base_url) as bot:
                [got] = await bot.get_updates(timeout=1)
                assert got.update_id == update["update_id"]
                await bot.send_message(CHAT, "welcome")

        asyncio.run(bot_side())
        message = server.wait_for_message_sync(CHAT, timeout=5)
        assert message.text == "welcome"
        with pytest.raises(TimeoutError, match="welcome"):
            server.wait_for_message_sync(CHAT, timeout=0.2)


def _http_json(url: str, payload: dict[str, object] | None = None) -> object:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_standalone_process_with_control_endpoints() -> None:
    with subprocess.Popen(
        [sys.executable, "-W", "error", "-m", "tests.botapi.server", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            _drive_standalone(proc.stdout.readline())
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0


def _drive_standalone(line: str) -> None:
    """Talk to the standalone server announced by ``line`` over plain HTTP."""
    root = line.split(" on ", 1)[1].split()[0]
    assert root.startswith("http://127.0.0.1:")
    update = _http_json(
        f"{root}/_test/user_sends", {"text": "/start", "chat_id": CHAT, "user_id": USER}
    )
    assert isinstance(update, dict) and update["message"]["text"] == "/start"
    api = f"{root}/bot{TOKEN}"
    got = _http_json(f"{api}/getUpdates", {"timeout": 0})
    assert isinstance(got, dict) and got["result"][0]["update_id"] == update["update_id"]
    _http_json(f"{api}/sendMessage", {"chat_id": CHAT, "text": "hi there"})
    waited = _http_json(
        f"{root}/_test/wait_for_message", {"chat_id": CHAT, "contains": "hi", "timeout": 2}
    )
    assert isinstance(waited, dict) and waited["text"] == "hi there"
    sent = _http_json(f"{root}/_test/sent?chat_id={CHAT}")
    assert isinstance(sent, list) and [m["text"] for m in sent] == ["hi there"]


# ----------------------------------------------------------------------------- webhooks


class Receiver:
    """A webhook endpoint on 127.0.0.1: records what it is posted, answers ``statuses`` in
    turn (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.posts: list[tuple[dict[str, object], str | None]] = []
        self.runner: aiohttp.web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        self.posts.append(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        return aiohttp.web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def __aenter__(self) -> Receiver:
        app = aiohttp.web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = aiohttp.web.AppRunner(app)
        await self.runner.setup()
        site = aiohttp.web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_webhook_gets_updates_with_the_secret_and_stops_get_updates(
    bot: Bot, server: BotApiServer
) -> None:
    async with Receiver() as hook:
        assert await bot.set_webhook(hook.url, secret_token="s3cret_-1", max_connections=5)
        info = await bot.get_webhook_info()
        assert (info.url, info.max_connections, info.pending_update_count) == (hook.url, 5, 0)
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates(timeout=0)
        update = server.user_sends("/start", chat_id=CHAT, user_id=USER)
        await wait_for(lambda: hook.posts)
        [(posted, secret)] = hook.posts
        assert posted == update and secret == "s3cret_-1"
        await wait_for(lambda: server.pending_updates() == [])  # a 200 acknowledges it
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        server.user_sends("/help", chat_id=CHAT, user_id=USER)
        [polled] = await bot.get_updates(timeout=1)  # polling works again
        assert polled.message is not None and polled.message.text == "/help"
        assert len(hook.posts) == 1


@pytest.mark.asyncio
async def test_webhook_retries_an_update_answered_with_an_error(
    bot: Bot, server: BotApiServer
) -> None:
    async with Receiver(500, 403) as hook:
        await bot.set_webhook(hook.url)
        update = server.user_sends("/start", chat_id=CHAT, user_id=USER)
        await wait_for(lambda: len(server.webhook_posts()) == 3)
        assert [p for p, _secret in hook.posts] == [update] * 3
        assert [p.status for p in server.webhook_posts()] == [500, 403, 200]
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 403 Forbidden"
        assert info.pending_update_count == 0
        await asyncio.sleep(0.5)  # acknowledged: never posted again
        assert len(hook.posts) == 3


@pytest.mark.asyncio
async def test_webhook_on_a_closed_port_is_retried_and_updates_wait(
    bot: Bot, server: BotApiServer
) -> None:
    async with Receiver() as hook:
        url = hook.url
    await bot.set_webhook(url)  # the receiver is gone: connection refused
    server.user_sends("/start", chat_id=CHAT, user_id=USER)
    await wait_for(lambda: len(server.webhook_posts()) >= 2)
    assert all(p.status == 0 for p in server.webhook_posts())
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert (info.last_error_message or "").startswith("Connection failed")


@pytest.mark.asyncio
async def test_webhook_url_rules(bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)wrong http url"):
        await bot.set_webhook("ftp://127.0.0.1/hook")
    with pytest.raises(BadRequest, match=r"(?i)unallowed characters"):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="not secret!")
    async with BotApiServer(TOKEN, https_only=True) as telegram:  # api.telegram.org's rule
        strict = Bot(TOKEN, base_url=telegram.base_url)
        async with strict:
            with pytest.raises(BadRequest, match=r"(?i)https url must be provided"):
                await strict.set_webhook("http://127.0.0.1:9/hook")
            assert await strict.set_webhook("https://127.0.0.1:9/hook")


@pytest.mark.asyncio
async def test_application_webhook_end_to_end(server: BotApiServer) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("echo: " + " ".join(context.args or []))

    app: Application = ApplicationBuilder().token(TOKEN).base_url(server.base_url).build()  # type: ignore[type-arg]
    app.add_handler(CommandHandler("echo", echo))
    async with Receiver() as probe:  # a free port for the bot's own webhook server
        port = int(probe.url.split(":")[2].split("/")[0])
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_webhook(
        listen="127.0.0.1",
        port=port,
        url_path="telegram",
        webhook_url=f"http://127.0.0.1:{port}/telegram",
        secret_token="s3cret",
    )
    try:
        server.user_sends("/echo over a webhook", chat_id=CHAT, user_id=USER)
        reply = await server.wait_for_message(CHAT, timeout=5)
        assert reply.text == "echo: over a webhook"
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert [p.status for p in server.webhook_posts()] == [200]


@pytest.mark.asyncio
async def test_held_calls_wait_and_carry_their_callers_tag(server: BotApiServer) -> None:
    async with Bot(TOKEN, base_url=server.base_url_for("instance-b")) as bot:
        server.hold("sendMessage", after=1, chat_ids=[CHAT])
        await bot.send_message(CHAT + 1, "another chat: not counted")
        await bot.send_message(CHAT, "first: let through")
        second = asyncio.create_task(bot.send_message(CHAT, "second: held"))
        held = await server.wait_held()
        assert (held.tag, held.params["text"]) == ("instance-b", "second: held")
        assert [m.text for m in server.sent(CHAT)] == ["first: let through"]
        server.release()
        assert (await second).text == "second: held"
    assert {c.tag for c in server.calls("sendMessage")} == {"instance-b"}
    assert [m.text for m in server.sent(CHAT)] == ["first: let through", "second: held"]
