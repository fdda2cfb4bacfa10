"""A small local Telegram Bot API server for end-to-end tests.

The real bot (python-telegram-bot, long polling) talks HTTP to this server, and tests act as
the user: they queue updates with :meth:`BotApiServer.user_sends` /
:meth:`BotApiServer.user_clicks` and read what the bot sent with :meth:`BotApiServer.sent` /
:meth:`BotApiServer.wait_for_message`.

Usage from an async test::

    async with BotApiServer(token="123:TEST") as server:
        app = (
            ApplicationBuilder()
            .token(server.token)
            .base_url(server.base_url)
            .base_file_url(server.base_file_url)
            .build()
        )
        ...
        server.user_sends("/start", chat_id=42, user_id=42)
        reply = await server.wait_for_message(42)

Usage from sync code (the server runs its own event loop in a background thread)::

    with BotApiServer() as server:
        server.user_sends("/start", chat_id=42, user_id=42)
        reply = server.wait_for_message_sync(42)

Webhook mode, as the local ``telegram-bot-api`` server does it: once the bot calls
``setWebhook`` (http:// URLs are accepted, as the local server accepts them), ``getUpdates``
answers 409 and every queued update is POSTed as JSON to the URL, with the
``X-Telegram-Bot-Api-Secret-Token`` header when a ``secret_token`` was given; an update
whose POST fails or is not answered 2xx is posted again ``webhook_retry_delay`` seconds
later (up to ``max_connections`` at once, in no particular order). Several bot processes
can be told apart: each may use its own :meth:`BotApiServer.base_url_for` ``tag``, which
every :class:`CallRecord` carries. :meth:`BotApiServer.hold` makes chosen calls wait (a
sender caught mid-batch) until :meth:`BotApiServer.release`.

Standalone process (driven over HTTP through the ``/_test/...`` control endpoints)::

    python -m tests.botapi.server --port 8081

What PTB 22.8 sends: every Bot API call is a POST to ``<base_url><token>/<method>`` with an
``application/x-www-form-urlencoded`` body (``multipart/form-data`` when files are uploaded).
``str`` values are sent verbatim, every other value (ints, bools, lists, dicts) is JSON-encoded,
so ``chat_id=42`` arrives as ``"42"``, ``True`` as ``"true"`` and ``reply_markup`` as a JSON
string. Plain JSON bodies (``application/json``) and query strings are accepted as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import itertools
import json
import re
import secrets
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import aiohttp
from aiohttp import web

__all__ = [
    "BOT_USERNAME",
    "DEFAULT_TOKEN",
    "MAX_TEXT_LENGTH",
    "ApiError",
    "BotApiServer",
    "BotMessage",
    "EntityParseError",
    "HeldCall",
    "MessageVersion",
    "Webhook",
    "WebhookPost",
    "parse_html",
]

JSONDict = dict[str, Any]
Predicate = Callable[["BotMessage"], bool]

BOT_USERNAME = "newsdesk_test_bot"
DEFAULT_TOKEN = "123:TEST"
MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64

# Parameters whose values are plain strings. PTB sends ``str`` values verbatim in form data, so
# these must never be JSON-decoded (a message text "123" must stay the string "123").
_STRING_PARAMS = frozenset(
    {
        "action",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "custom_emoji_id",
        "description",
        "emoji",
        "explanation",
        "inline_message_id",
        "ip_address",
        "language_code",
        "message_effect_id",
        "name",
        "parse_mode",
        "query",
        "question",
        "secret_token",
        "short_description",
        "text",
        "title",
        "url",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
_ADMIN_RIGHTS = (
    "is_anonymous",
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
_RESTRICTED_FIELDS = (
    "is_member",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_send_messages",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_manage_topics",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
)

# Update types Telegram delivers when ``allowed_updates`` is empty / never set.
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_BOT_COMMAND_IN_TEXT_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
_MENTION_IN_TEXT_RE = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{5,32}")

_ERR_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_ERR_BAD_QUERY = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_ERR_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_ERR_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the Bot API: ``{"ok": false, "error_code": ..., ...}``."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


class EntityParseError(ValueError):
    """Raised by :func:`parse_html` for markup Telegram would reject."""


# --------------------------------------------------------------------------------------------
# Telegram-style HTML parsing (modelled on TDLib's parse_html)
# --------------------------------------------------------------------------------------------

_ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_SIMPLE_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
}
_NAMED_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_UNQUOTED_ATTR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    utf16_offset: int
    byte_offset: int


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (the unit of Telegram entity offsets)."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


def _decode_html_entity(source: str, pos: int) -> tuple[str, int] | None:
    """Decode the character reference starting at ``source[pos] == "&"``.

    Like Telegram: only ``&lt; &gt; &amp; &quot;`` and numeric references are recognised and
    the trailing ``;`` is optional. Returns ``(character, next_position)`` or ``None``.
    """
    n = len(source)
    end = pos + 1
    if end < n and source[end] == "#":
        end += 1
        if end < n and source[end] == "x":
            end += 1
            start = end
            while end < n and source[end] in _HEX_DIGITS:
                end += 1
            digits, base = source[start:end], 16
        else:
            start = end
            while end < n and source[end].isascii() and source[end].isdigit():
                end += 1
            digits, base = source[start:end], 10
        if not digits or end - pos >= 10:
            return None
        value = int(digits, base)
        if value == 0 or value >= 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    else:
        while end < n and source[end].isascii() and source[end].isalpha():
            end += 1
        decoded = _NAMED_HTML_ENTITIES.get(source[pos + 1 : end])
        if decoded is None:
            return None
        char = decoded
    if end < n and source[end] == ";":
        end += 1
    return char, end


def _entity_for_tag(tag: _OpenTag, offset: int, length: int, entities: list[JSONDict]) -> None:
    """Append the entity produced by closing ``tag`` (merging ``<pre><code>`` pairs)."""
    name = tag.name
    if name in _SIMPLE_ENTITY_TYPES:
        entities.append({"type": _SIMPLE_ENTITY_TYPES[name], "offset": offset, "length": length})
    elif name == "a":
        url = tag.attrs.get("href", "")
        if url:
            entities.append({"type": "text_link", "offset": offset, "length": length, "url": url})
    elif name == "tg-emoji":
        entities.append(
            {
                "type": "custom_emoji",
                "offset": offset,
                "length": length,
                "custom_emoji_id": tag.attrs["emoji-id"],
            }
        )
    elif name == "blockquote":
        kind = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})
    elif name == "code":
        language = tag.attrs.get("class", "")
        language = language[len("language-") :] if language.startswith("language-") else ""
        # The language only matters for <pre><code class="language-x">; kept aside until then.
        entities.append({"type": "code", "offset": offset, "length": length, "_lang": language})
    elif name == "pre":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == offset
            and last["length"] == length
        ):
            last["type"] = "pre"
            if last.get("_lang"):
                last["language"] = last["_lang"]
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})


def _trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Strip leading/trailing whitespace like Telegram does, clipping entities accordingly."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    left = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    clipped: list[JSONDict] = []
    for entity in entities:
        start = max(entity["offset"] - left, 0)
        end = min(entity["offset"] + entity["length"] - left, total)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return stripped, clipped


def parse_html(source: str, *, strict_ampersand: bool = True) -> tuple[str, list[JSONDict]]:
    """Parse Telegram-flavoured HTML into ``(visible_text, entities)``.

    Mirrors TDLib's parser: supported tags only, properly nested, every tag closed, and the
    same error wording (``Unsupported start tag "div" at byte offset 0`` ...). Entity offsets
    are in UTF-16 code units. The visible text is *not* trimmed here.

    ``strict_ampersand``: real Telegram keeps a ``&`` that does not start a known character
    reference as a literal ``&``. With ``strict_ampersand=True`` (the default, stricter than
    Telegram) such a bare ``&`` is rejected, which catches un-escaped user content early.
    """
    n = len(source)
    out: list[str] = []
    utf16 = 0
    stack: list[_OpenTag] = []
    entities: list[JSONDict] = []
    i = 0
    while i < n:
        char = source[i]
        if char == "&":
            decoded = _decode_html_entity(source, i)
            if decoded is not None:
                text, i = decoded
                out.append(text)
                utf16 += utf16_len(text)
                continue
            if strict_ampersand:
                raise EntityParseError(
                    f'Unescaped "&" at byte offset {_byte_offset(source, i)}; '
                    "escape it as &amp; (strict test server)"
                )
        if char != "<":
            out.append(char)
            utf16 += utf16_len(char)
            i += 1
            continue

        begin = i
        begin_bytes = _byte_offset(source, begin)
        i += 1
        if i < n and source[i] == "/":
            # End tag.
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin_bytes}")
            i += 1
            name_start = i
            while i < n and not source[i].isspace() and source[i] != ">":
                i += 1
            end_name = source[name_start:i].lower()
            while i < n and source[i].isspace():
                i += 1
            if i >= n or source[i] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {begin_bytes}")
            i += 1
            tag = stack.pop()
            if end_name and end_name != tag.name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {begin_bytes}, "
                    f'expected "</{tag.name}>", found "</{end_name}>"'
                )
            if utf16 > tag.utf16_offset:
                _entity_for_tag(tag, tag.utf16_offset, utf16 - tag.utf16_offset, entities)
            continue

        # Start tag.
        name_start = i
        while i < n and not source[i].isspace() and source[i] != ">":
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin_bytes}")
        name = source[name_start:i].lower()
        if name not in _ALLOWED_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {begin_bytes}')
        attrs: dict[str, str] = {}
        while True:
            while i < n and source[i].isspace():
                i += 1
            if i >= n:
                raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin_bytes}')
            if source[i] == ">":
                break
            attr_start = i
            while i < n and not source[i].isspace() and source[i] not in "=>/\"'":
                i += 1
            attr_name = source[attr_start:i].lower()
            if not attr_name:
                raise EntityParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {begin_bytes}'
                )
            while i < n and source[i].isspace():
                i += 1
            if i >= n:
                raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin_bytes}')
            if source[i] != "=":
                attrs[attr_name] = ""  # value-less attribute, e.g. <blockquote expandable>
                continue
            i += 1
            while i < n and source[i].isspace():
                i += 1
            if i >= n:
                raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {begin_bytes}')
            if source[i] in "\"'":
                quote = source[i]
                i += 1
                value_parts: list[str] = []
                while i < n and source[i] != quote:
                    if source[i] == "&":
                        decoded = _decode_html_entity(source, i)
                        if decoded is not None:
                            value_parts.append(decoded[0])
                            i = decoded[1]
                            continue
                    value_parts.append(source[i])
                    i += 1
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin_bytes}")
                i += 1
                value = "".join(value_parts)
            else:
                token_start = i
                while i < n and source[i] in _UNQUOTED_ATTR_CHARS:
                    i += 1
                value = source[token_start:i].lower()
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin_bytes}")
                if not source[i].isspace() and source[i] != ">":
                    raise EntityParseError(
                        "Unexpected end of name token at byte offset "
                        f"{_byte_offset(source, token_start)}"
                    )
            attrs[attr_name] = value
        i += 1  # the closing '>'
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {begin_bytes}'
            )
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError("Invalid custom emoji identifier specified")
        stack.append(_OpenTag(name, attrs, utf16, begin_bytes))

    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    for entity in entities:
        entity.pop("_lang", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# --------------------------------------------------------------------------------------------
# Recorded state
# --------------------------------------------------------------------------------------------


@dataclass
class MessageVersion:
    """One version of a bot message's content (before an edit)."""

    text: str
    source: str
    parse_mode: str | None
    entities: list[JSONDict]
    reply_markup: JSONDict | None
    date: int


@dataclass
class BotMessage:
    """A message the bot sent, with edits applied.

    ``text`` is the visible text (tags removed, entities unescaped, trimmed), ``source`` the
    ``text`` parameter exactly as the bot sent it and ``html`` the same when ``parse_mode`` was
    HTML (else ``None``). ``history`` keeps the versions replaced by edits (oldest first).
    Objects returned by :meth:`BotApiServer.wait_for_message` are snapshots whose ``event`` is
    ``"sent"`` or ``"edited"``; those from :meth:`BotApiServer.sent` are live records.
    """

    chat_id: int
    message_id: int
    text: str
    source: str
    parse_mode: str | None
    entities: list[JSONDict]
    reply_markup: JSONDict | None
    date: int
    reply_to_message_id: int | None = None
    link_preview_options: JSONDict | None = None
    disable_notification: bool = False
    history: list[MessageVersion] = field(default_factory=list)
    edit_date: int | None = None
    deleted: bool = False
    event: str = "sent"

    @property
    def html(self) -> str | None:
        return self.source if (self.parse_mode or "").lower() == "html" else None

    @property
    def edited(self) -> bool:
        return bool(self.history)

    @property
    def buttons(self) -> list[JSONDict]:
        """The inline keyboard buttons, flattened row by row (empty without a keyboard)."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]

    @property
    def callback_data(self) -> list[str]:
        return [b["callback_data"] for b in self.buttons if "callback_data" in b]

    def to_json(self) -> JSONDict:
        data = dataclasses.asdict(self)
        data["html"] = self.html
        data["edited"] = self.edited
        return data


@dataclass
class CallRecord:
    """One request the bot made: method name, decoded parameters and the answer given."""

    method: str
    params: JSONDict
    status: int
    response: JSONDict
    time: float
    tag: str = ""  # the caller's base_url_for(tag): which bot process made the call


@dataclass
class Webhook:
    """What ``setWebhook`` set (``getWebhookInfo`` reports it)."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class WebhookPost:
    """One POST of an update to the webhook: ``status`` is the HTTP answer (0: no answer)."""

    update_id: int
    url: str
    status: int
    error: str | None
    time: float


@dataclass
class HeldCall:
    """A call :meth:`BotApiServer.hold` keeps waiting: who made it, with what."""

    method: str
    params: JSONDict
    tag: str
    time: float = field(default_factory=time.time)  # when it arrived
    released: bool = False
    abandoned: bool = False  # the caller went away (e.g. killed) while it was held


@dataclass
class _Hold:
    method: str
    chat_ids: frozenset[int] | None
    skip: int
    count: int


@dataclass
class _CallbackQuery:
    chat_id: int
    message_id: int
    data: str
    answered: bool = False
    answer: JSONDict | None = None


# --------------------------------------------------------------------------------------------
# Parameter helpers
# --------------------------------------------------------------------------------------------


def _decode_form_value(name: str, raw: str) -> object:
    if name in _STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _as_int(params: JSONDict, name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _bad_request(f"{name} is empty")
        return None
    if isinstance(value, bool):
        raise _bad_request(f"wrong parameter {name} in request")
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        raise _bad_request(f"wrong parameter {name} in request") from None


def _as_bool(params: JSONDict, name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _as_object(params: JSONDict, name: str, what: str) -> object:
    value = params.get(name)
    if isinstance(value, str):
        raise _bad_request(f"can't parse {what} JSON object")
    return value


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class BotApiServer:
    """A fake Telegram Bot API server (aiohttp) plus a test-side "user" API.

    Start it with ``async with BotApiServer() as server`` (on the current event loop), with
    ``with BotApiServer() as server`` (own loop in a background thread) or run
    ``python -m tests.botapi.server``. Point PTB at :attr:`base_url` / :attr:`base_file_url`.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = BOT_USERNAME,
        bot_first_name: str = "Newsdesk Test Bot",
        strict_ampersand: bool = True,
        strict_chats: bool = False,
        max_poll_timeout: float = 50.0,
        https_only: bool = False,
        webhook_retry_delay: float = 0.2,
        webhook_timeout: float = 10.0,
    ) -> None:
        self.token = token
        self.host = host
        self._requested_port = port
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.strict_ampersand = strict_ampersand
        self.strict_chats = strict_chats
        self.max_poll_timeout = max_poll_timeout
        # False: like the local telegram-bot-api server, any http(s) webhook URL and port;
        # True: like api.telegram.org, https only.
        self.https_only = https_only
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self._webhook_task: asyncio.Task[None] | None = None
        self._post_tasks: set[asyncio.Task[None]] = set()
        self._http: Any = None  # aiohttp.ClientSession on the server loop
        head = token.split(":", 1)[0]
        self.bot_id = int(head) if head.isdigit() else 123

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._async_changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False
        self._thread: threading.Thread | None = None

        self._methods: dict[str, Callable[[JSONDict], Any]] = {
            "getme": self._m_get_me,
            "setwebhook": self._m_set_webhook,
            "deletewebhook": self._m_delete_webhook,
            "getwebhookinfo": self._m_get_webhook_info,
            "getupdates": self._m_get_updates,
            "sendmessage": self._m_send_message,
            "editmessagetext": self._m_edit_message_text,
            "editmessagereplymarkup": self._m_edit_message_reply_markup,
            "answercallbackquery": self._m_answer_callback_query,
            "setmycommands": self._m_set_my_commands,
            "getmycommands": self._m_get_my_commands,
            "deletemycommands": self._m_delete_my_commands,
            "sendchataction": self._m_send_chat_action,
            "deletemessage": self._m_delete_message,
            "getchat": self._m_get_chat,
            "getchatmember": self._m_get_chat_member,
            "close": self._m_true,
            "logout": self._m_true,
        }
        self._reset_state()

    # ---------------------------------------------------------------- state

    def _reset_state(self) -> None:
        with self._lock:
            self._update_ids = itertools.count(100_001)
            self._updates: list[JSONDict] = []
            self._allowed_updates: list[str] = []
            self._poll_generation = 0
            self._chats: dict[int, JSONDict] = {}
            self._chat_messages: dict[int, dict[int, JSONDict]] = {}
            self._next_message_id: dict[int, int] = {}
            self._bot_messages: list[BotMessage] = []
            self._bot_index: dict[tuple[int, int], BotMessage] = {}
            self._events: list[BotMessage] = []
            self._taken: list[bool] = []
            self._calls: list[CallRecord] = []
            self._callback_queries: dict[str, _CallbackQuery] = {}
            self._commands: dict[tuple[str, str], list[JSONDict]] = {}
            self._blocked: set[int] = set()
            self._member_status: dict[tuple[int, int], str] = {}
            self._flood_remaining = 0
            self._flood_retry_after = 1
            self._flood_methods: frozenset[str] = frozenset({"sendmessage"})
            self._webhook: Webhook | None = None
            self._in_flight: set[int] = set()  # update ids being posted to the webhook
            self._retry_at: dict[int, float] = {}  # update id -> monotonic time of next try
            self._webhook_posts: list[WebhookPost] = []
            self._holds: list[_Hold] = []
            self._held: list[HeldCall] = []
            self._release_event: asyncio.Event | None = None

    def reset(self) -> None:
        """Forget all updates, messages, calls, commands, blocks, flood settings, holds and
        the webhook."""
        self.release()
        self._reset_state()
        self._notify()

    def _notify(self) -> None:
        """Wake every waiter (sync waiters directly, async ones on the server loop)."""
        with self._lock:
            self._cond.notify_all()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread_id:
            self._wake_async()
        else:
            with contextlib.suppress(RuntimeError):  # loop shutting down
                loop.call_soon_threadsafe(self._wake_async)

    def _wake_async(self) -> None:
        event = self._async_changed
        self._async_changed = asyncio.Event()
        if event is not None:
            event.set()

    # ---------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("BotApiServer is not running")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for PTB's ``base_url`` (the token is appended by PTB)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for PTB's ``base_file_url``."""
        return f"{self.url}/file/bot"

    def base_url_for(self, tag: str) -> str:
        """A ``base_url`` for one of several bot processes: its calls carry ``tag``."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", tag):
            raise ValueError(f"tag {tag!r}: letters, digits, '_', '.' or '-' only")
        return f"{self.url}/tag/{tag}/bot"

    @property
    def api_url(self) -> str:
        """Full method URL prefix including the token: ``{api_url}/getMe``."""
        return f"{self.base_url}{self.token}"

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("*", "/file/bot{token}/{path:.*}", self._handle_file)
        app.router.add_route("*", "/tag/{tag}/bot{token}/{method}", self._handle_api)
        app.router.add_route("*", "/tag/{tag}/file/bot{token}/{path:.*}", self._handle_file)
        app.router.add_post("/_test/user_sends", self._ctl_user_sends)
        app.router.add_post("/_test/user_clicks", self._ctl_user_clicks)
        app.router.add_get("/_test/sent", self._ctl_sent)
        app.router.add_get("/_test/calls", self._ctl_calls)
        app.router.add_post("/_test/wait_for_message", self._ctl_wait_for_message)
        app.router.add_post("/_test/block", self._ctl_block)
        app.router.add_post("/_test/unblock", self._ctl_unblock)
        app.router.add_post("/_test/flood", self._ctl_flood)
        app.router.add_post("/_test/reset", self._ctl_reset)
        app.router.add_get("/_test/state", self._ctl_state)
        app.router.add_get("/_test/webhook", self._ctl_webhook)
        return app

    async def start(self) -> BotApiServer:
        """Start serving on the running event loop."""
        if self._runner is not None:
            raise RuntimeError("BotApiServer already started")
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._async_changed = asyncio.Event()
        self._closing = False
        runner = web.AppRunner(
            self._make_app(), shutdown_timeout=2.0, handler_cancellation=True, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.webhook_timeout)
        )
        self._webhook_task = asyncio.create_task(self._webhook_loop(), name="botapi-webhook")
        return self

    async def stop(self) -> None:
        """Stop serving; pending long polls return immediately."""
        runner = self._runner
        if runner is None:
            return
        self._closing = True
        self._notify()
        self.release()
        await asyncio.sleep(0)
        tasks = [t for t in (self._webhook_task, *self._post_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._webhook_task = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        await runner.cleanup()
        self._runner = None
        self._port = None

    async def __aenter__(self) -> BotApiServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> BotApiServer:
        """Run the server on its own event loop in a daemon thread (for sync code)."""
        if self._thread is not None:
            raise RuntimeError("BotApiServer thread already running")
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="botapi-server", daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("BotApiServer thread did not start")
        if errors:
            thread.join()
            raise errors[0]
        self._thread = thread
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> BotApiServer:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    # ---------------------------------------------------------------- test-side: chats

    def block(self, chat_id: int) -> None:
        """Make the user of ``chat_id`` have blocked the bot (sends answer 403)."""
        with self._lock:
            self._blocked.add(int(chat_id))

    def unblock(self, chat_id: int) -> None:
        with self._lock:
            self._blocked.discard(int(chat_id))

    def flood(
        self,
        count: int,
        *,
        retry_after: int = 1,
        methods: Iterable[str] = ("sendMessage",),
    ) -> None:
        """Answer the next ``count`` calls of ``methods`` with 429 ``retry_after``."""
        with self._lock:
            self._flood_remaining = count
            self._flood_retry_after = retry_after
            self._flood_methods = frozenset(m.lower() for m in methods)

    def hold(
        self,
        method: str = "sendMessage",
        *,
        after: int = 0,
        count: int = 1,
        chat_ids: Iterable[int] | None = None,
    ) -> None:
        """Let ``after`` calls of ``method`` (to ``chat_ids``, if given) through, then keep
        the next ``count`` waiting (nothing done, nothing recorded) until :meth:`release`.
        A caller that goes away meanwhile (killed) leaves its call undone, as Telegram would
        never have received it."""
        chats = frozenset(int(c) for c in chat_ids) if chat_ids is not None else None
        with self._lock:
            self._holds.append(_Hold(method.lower(), chats, after, count))

    def release(self) -> None:
        """Let every held call go on, and hold no more."""
        with self._lock:
            self._holds.clear()
            event = self._release_event
            self._release_event = None
        loop = self._loop
        if event is not None and loop is not None and not loop.is_closed():
            if threading.get_ident() == self._loop_thread_id:
                event.set()
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(event.set)

    def held(self) -> list[HeldCall]:
        """The calls held so far (waiting, released or abandoned), oldest first."""
        with self._lock:
            return list(self._held)

    async def wait_held(self, timeout: float = 10.0) -> HeldCall:
        """The first call still held, once there is one (``TimeoutError`` after ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                waiting = [h for h in self._held if not h.released and not h.abandoned]
            if waiting:
                return waiting[0]
            if loop.time() > deadline:
                raise TimeoutError(f"no call held within {timeout}s")
            await asyncio.sleep(0.02)

    def _hold_for(self, method: str, params: JSONDict) -> bool:
        """Whether this call is to be held (and counts it against the holds)."""
        with self._lock:
            for hold in self._holds:
                if hold.method != method.lower() or hold.count <= 0:
                    continue
                if hold.chat_ids is not None:
                    try:
                        chat = int(str(params.get("chat_id")))
                    except ValueError:
                        continue
                    if chat not in hold.chat_ids:
                        continue
                if hold.skip > 0:
                    hold.skip -= 1
                    return False
                hold.count -= 1
                return True
        return False

    async def _wait_if_held(self, method: str, params: JSONDict, tag: str) -> None:
        if not self._hold_for(method, params):
            return
        call = HeldCall(method, copy.deepcopy(params), tag)
        with self._lock:
            if self._release_event is None:
                self._release_event = asyncio.Event()
            event = self._release_event
            self._held.append(call)
        try:
            await event.wait()
        except asyncio.CancelledError:  # the caller disconnected: the call never happened
            call.abandoned = True
            raise
        call.released = True

    # ---------------------------------------------------------------- webhook

    @property
    def webhook(self) -> Webhook | None:
        """What ``setWebhook`` set, or None (updates wait for ``getUpdates``)."""
        with self._lock:
            return copy.deepcopy(self._webhook)

    def webhook_posts(self) -> list[WebhookPost]:
        """Every POST of an update to the webhook so far, oldest first (retries included)."""
        with self._lock:
            return list(self._webhook_posts)

    def _due_for_webhook(self) -> tuple[Webhook | None, list[JSONDict], float | None]:
        """The webhook, the updates to post now, and when the next retry falls due."""
        now = time.monotonic()
        with self._lock:
            hook = self._webhook
            if hook is None or self._closing:
                return None, [], None
            self._updates = [u for u in self._updates if self._deliverable(u)]
            free = hook.max_connections - len(self._in_flight)
            due: list[JSONDict] = []
            next_retry: float | None = None
            for update in self._updates:
                update_id = update["update_id"]
                if update_id in self._in_flight:
                    continue
                at = self._retry_at.get(update_id, 0.0)
                if at > now:
                    next_retry = at if next_retry is None else min(next_retry, at)
                    continue
                if len(due) < free:
                    due.append(copy.deepcopy(update))
                    self._in_flight.add(update_id)
            return copy.deepcopy(hook), due, next_retry

    async def _webhook_loop(self) -> None:
        """Post queued updates to the webhook while one is set."""
        while not self._closing:
            changed = self._async_changed
            hook, due, next_retry = self._due_for_webhook()
            for update in due:
                assert hook is not None
                task = asyncio.create_task(self._post_update(hook, update))
                self._post_tasks.add(task)
                task.add_done_callback(self._post_tasks.discard)
            wait = 1.0 if next_retry is None else max(0.0, next_retry - time.monotonic())
            if changed is None:
                await asyncio.sleep(wait)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    async def _post_update(self, hook: Webhook, update: JSONDict) -> None:
        update_id = update["update_id"]
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        status, error = 0, None
        try:
            if urlparse(hook.url).hostname not in _LOCAL_HOSTS:
                raise ConnectionError("the test server posts to this machine only")
            async with self._http.post(hook.url, data=json.dumps(update), headers=headers) as r:
                status = r.status
                await r.read()
                if not 200 <= status < 300:
                    error = f"Wrong response from the webhook: {status} {r.reason}"
        except asyncio.CancelledError:
            with self._lock:
                self._in_flight.discard(update_id)
            raise
        except Exception as exc:  # connection refused, reset, timeout
            error = f"Connection failed: {type(exc).__name__}: {exc}".rstrip(": ")
        with self._lock:
            self._in_flight.discard(update_id)
            self._webhook_posts.append(WebhookPost(update_id, hook.url, status, error, time.time()))
            if error is None:
                self._updates = [u for u in self._updates if u["update_id"] != update_id]
                self._retry_at.pop(update_id, None)
            else:
                self._retry_at[update_id] = time.monotonic() + self.webhook_retry_delay
                if self._webhook is not None and self._webhook.url == hook.url:
                    self._webhook.last_error_date = int(time.time())
                    self._webhook.last_error_message = error
        self._notify()

    def add_chat(
        self,
        chat_id: int,
        *,
        chat_type: str = "private",
        username: str | None = "test_user",
        first_name: str = "Test",
        title: str | None = None,
    ) -> JSONDict:
        """Register a chat (needed with ``strict_chats=True`` before the bot can write to it)."""
        chat: JSONDict = {"id": int(chat_id), "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
            if username:
                chat["username"] = username
        else:
            chat["title"] = title or "Test Group"
        with self._lock:
            self._chats[int(chat_id)] = chat
            self._chat_messages.setdefault(int(chat_id), {})
        return dict(chat)

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """What ``getChatMember`` answers for this user in this group: ``creator``,
        ``administrator``, ``member`` (the default for anyone), ``restricted``, ``left`` or
        ``kicked``."""
        if status not in _MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        with self._lock:
            self._member_status[(int(chat_id), int(user_id))] = status

    def _chat_for_send(self, chat_id: int) -> JSONDict:
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is not None:
                return chat
            if self.strict_chats:
                raise _bad_request("chat not found")
            if chat_id > 0:
                return self.add_chat(chat_id)
            return self.add_chat(chat_id, chat_type="supergroup")

    def _new_message_id(self, chat_id: int) -> int:
        with self._lock:
            message_id = self._next_message_id.get(chat_id, 1)
            self._next_message_id[chat_id] = message_id + 1
            return message_id

    def _queue_update(self, kind: str, payload: JSONDict) -> JSONDict:
        with self._lock:
            update = {"update_id": next(self._update_ids), kind: payload}
            self._updates.append(update)
        self._notify()
        return update

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    @staticmethod
    def _user(user_id: int, username: str | None, first_name: str) -> JSONDict:
        user: JSONDict = {
            "id": int(user_id),
            "is_bot": False,
            "first_name": first_name,
            "language_code": "en",
        }
        if username:
            user["username"] = username
        return user

    @staticmethod
    def text_entities(text: str) -> list[JSONDict]:
        """The entities Telegram's client would attach: bot commands and @mentions."""
        entities: list[JSONDict] = []
        covered: list[tuple[int, int]] = []
        for match in _BOT_COMMAND_IN_TEXT_RE.finditer(text):
            covered.append(match.span())
            entities.append(
                {
                    "type": "bot_command",
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group()),
                }
            )
        for match in _MENTION_IN_TEXT_RE.finditer(text):
            if any(start <= match.start() < end for start, end in covered):
                continue
            entities.append(
                {
                    "type": "mention",
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group()),
                }
            )
        entities.sort(key=lambda e: e["offset"])
        return entities

    # ---------------------------------------------------------------- test-side: the user

    def user_sends(
        self,
        text: str,
        *,
        chat_id: int,
        user_id: int,
        chat_type: str = "private",
        username: str | None = "test_user",
        first_name: str = "Test",
        title: str | None = None,
        reply_to_message_id: int | None = None,
        entities: list[JSONDict] | None = None,
    ) -> JSONDict:
        """Queue a ``message`` update from the user and return it.

        ``bot_command`` entities (``/cmd``, ``/cmd@bot``) and ``mention`` entities
        (``@newsdesk_test_bot``) are added automatically unless ``entities`` is given.
        """
        chat_id = int(chat_id)
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None or chat["type"] != chat_type:
                chat = self.add_chat(
                    chat_id,
                    chat_type=chat_type,
                    username=username,
                    first_name=first_name,
                    title=title,
                )
            message: JSONDict = {
                "message_id": self._new_message_id(chat_id),
                "from": self._user(user_id, username, first_name),
                "chat": dict(chat),
                "date": int(time.time()),
                "text": text,
            }
            found = self.text_entities(text) if entities is None else entities
            if found:
                message["entities"] = found
            if reply_to_message_id is not None:
                replied = self._chat_messages[chat_id].get(int(reply_to_message_id))
                if replied is None:
                    raise ValueError(f"no message {reply_to_message_id} in chat {chat_id}")
                message["reply_to_message"] = _without_reply(replied)
            self._chat_messages[chat_id][message["message_id"]] = message
            return self._queue_update("message", copy.deepcopy(message))

    def user_clicks(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        data: str,
        *,
        username: str | None = "test_user",
        first_name: str = "Test",
    ) -> JSONDict:
        """Queue a ``callback_query`` update for the inline button with ``data``.

        Raises ``ValueError`` if the bot message does not exist (or was deleted) or shows no
        button with that callback data: a user cannot click a button that is not there.
        """
        chat_id, message_id = int(chat_id), int(message_id)
        with self._lock:
            record = self._bot_index.get((chat_id, message_id))
            if record is None or record.deleted:
                raise ValueError(f"no bot message {message_id} in chat {chat_id}")
            if data not in record.callback_data:
                raise ValueError(
                    f"message {message_id} has no button with callback_data {data!r}; "
                    f"buttons: {record.callback_data}"
                )
            query_id = str(secrets.randbits(63))
            self._callback_queries[query_id] = _CallbackQuery(chat_id, message_id, data)
            query: JSONDict = {
                "id": query_id,
                "from": self._user(user_id, username, first_name),
                "message": copy.deepcopy(self._chat_messages[chat_id][message_id]),
                "chat_instance": str((abs(chat_id) * 1_000_003 + 17) % 2**62),
                "data": data,
            }
            return self._queue_update("callback_query", query)

    def callback_answer(self, query_id: str) -> JSONDict | None:
        """The ``answerCallbackQuery`` parameters given for ``query_id`` (None if unanswered)."""
        with self._lock:
            query = self._callback_queries.get(query_id)
            return copy.deepcopy(query.answer) if query else None

    # ---------------------------------------------------------------- test-side: inspection

    def sent(self, chat_id: int | None = None) -> list[BotMessage]:
        """Messages the bot sent (live records with edits applied), oldest first."""
        with self._lock:
            return [m for m in self._bot_messages if chat_id is None or m.chat_id == int(chat_id)]

    def calls(self, method: str | None = None) -> list[CallRecord]:
        """Raw log of the bot's requests, optionally for one method (case-insensitive)."""
        with self._lock:
            if method is None:
                return list(self._calls)
            return [c for c in self._calls if c.method.lower() == method.lower()]

    def pending_updates(self) -> list[JSONDict]:
        """Updates queued but not yet acknowledged by the bot (via a later ``offset``)."""
        with self._lock:
            return copy.deepcopy(self._updates)

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        with self._lock:
            return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    def _take_event(self, chat_id: int | None, predicate: Predicate | None) -> BotMessage | None:
        with self._lock:
            for index, event in enumerate(self._events):
                if self._taken[index]:
                    continue
                if chat_id is not None and event.chat_id != int(chat_id):
                    continue
                if predicate is not None and not predicate(event):
                    continue
                self._taken[index] = True
                return event
            return None

    def _timeout_error(self, chat_id: int | None, timeout: float) -> TimeoutError:
        seen = [
            f"#{m.message_id} {m.event}: {m.text[:80]!r}"
            for m in self._events
            if chat_id is None or m.chat_id == chat_id
        ]
        return TimeoutError(
            f"no matching bot message in chat {chat_id} within {timeout}s; "
            f"bot messages seen there: {seen or 'none'}"
        )

    async def wait_for_message(
        self,
        chat_id: int | None = None,
        predicate: Predicate | None = None,
        timeout: float = 10.0,
    ) -> BotMessage:
        """Return the oldest not-yet-returned bot message event (send or edit) matching.

        Every send and every edit is an event; each event is returned by at most one call, so
        consecutive calls walk through the bot's output in order and a reply that arrived
        before the call is not missed. The result is a snapshot (``event`` is ``"sent"`` or
        ``"edited"``). Raises ``TimeoutError``. Safe to call from another event loop/thread.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("BotApiServer is not running")
        if asyncio.get_running_loop() is not loop:
            future = asyncio.run_coroutine_threadsafe(
                self.wait_for_message(chat_id, predicate, timeout), loop
            )
            return await asyncio.wrap_future(future)
        deadline = loop.time() + timeout
        while True:
            found = self._take_event(chat_id, predicate)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            changed = self._async_changed
            if remaining <= 0 or changed is None:
                raise self._timeout_error(chat_id, timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def wait_for_message_sync(
        self,
        chat_id: int | None = None,
        predicate: Predicate | None = None,
        timeout: float = 10.0,
    ) -> BotMessage:
        """Blocking variant of :meth:`wait_for_message` (not on the server's own thread)."""
        if threading.get_ident() == self._loop_thread_id:
            raise RuntimeError("use `await server.wait_for_message(...)` on the server loop")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._take_event(chat_id, predicate)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout_error(chat_id, timeout)
                self._cond.wait(remaining)

    def skip_messages(self, chat_id: int | None = None) -> int:
        """Mark all current bot message events (of a chat) as returned; return how many."""
        with self._lock:
            count = 0
            for index, event in enumerate(self._events):
                if not self._taken[index] and (chat_id is None or event.chat_id == chat_id):
                    self._taken[index] = True
                    count += 1
            return count

    def _record_event(self, record: BotMessage, kind: str) -> None:
        snapshot = copy.deepcopy(record)
        snapshot.event = kind
        with self._lock:
            self._events.append(snapshot)
            self._taken.append(False)
        self._notify()

    # ---------------------------------------------------------------- HTTP plumbing

    async def _read_params(self, request: web.Request) -> JSONDict:
        params: JSONDict = {}
        for key, value in request.query.items():
            params[key] = _decode_form_value(key, value)
        if not request.can_read_body:
            return params
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad_request("can't parse JSON encoded request") from None
            if not isinstance(body, dict):
                raise _bad_request("can't parse JSON encoded request")
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = _decode_form_value(key, value)
                else:  # an uploaded file
                    params[key] = {"filename": value.filename, "content_type": value.content_type}
        return params

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        tag = request.match_info.get("tag", "")
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            params = {}
            status, body = exc.code, exc.to_json()
        else:
            await self._wait_if_held(method, params, tag)
            status, body = await self._dispatch(request.match_info["token"], method, params)
        with self._lock:
            self._calls.append(CallRecord(method, params, status, body, time.time(), tag))
        return web.json_response(body, status=status)

    async def _dispatch(self, token: str, method: str, params: JSONDict) -> tuple[int, JSONDict]:
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        handler = self._methods.get(method.lower())
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            self._check_flood(method)
            result = handler(params)
            if isinstance(result, Awaitable):
                result = await result
        except ApiError as exc:
            return exc.code, exc.to_json()
        return 200, {"ok": True, "result": result}

    async def _handle_file(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    def _check_flood(self, method: str) -> None:
        with self._lock:
            if self._flood_remaining > 0 and method.lower() in self._flood_methods:
                self._flood_remaining -= 1
                retry = self._flood_retry_after
                raise ApiError(
                    429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
                )

    def _check_blocked(self, chat_id: int) -> None:
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    # ---------------------------------------------------------------- text validation

    def _formatted_text(self, params: JSONDict) -> tuple[str, str, str | None, list[JSONDict]]:
        """Validate ``text``/``parse_mode``/``entities``: (visible, source, mode, entities)."""
        raw = params.get("text")
        source = "" if raw is None else str(raw)
        mode_param = params.get("parse_mode")
        parse_mode = str(mode_param) if mode_param not in (None, "") else None
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                visible, entities = parse_html(source, strict_ampersand=self.strict_ampersand)
            except EntityParseError as exc:
                raise _bad_request(f"can't parse entities: {exc}") from None
        elif mode in ("", "markdown", "markdownv2"):
            # Markdown is not parsed: the text is stored as sent.
            visible = source
            given = _as_object(params, "entities", "message entities")
            entities = [dict(e) for e in given] if isinstance(given, list) else []
        else:
            raise _bad_request("unsupported parse_mode")
        visible, entities = _trim(visible, entities)
        if not visible:
            raise _bad_request("message text is empty")
        if len(visible) > MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        return visible, source, parse_mode, entities

    @staticmethod
    def _reply_markup(params: JSONDict) -> JSONDict | None:
        markup = _as_object(params, "reply_markup", "reply keyboard markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad_request(
                        "can't parse inline keyboard button: Text buttons are "
                        "unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not (
                    1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise _bad_request("BUTTON_DATA_INVALID")
                url = button.get("url")
                if url is not None and not re.match(r"^(https?|tg)://\S+$", str(url)):
                    raise _bad_request("BUTTON_URL_INVALID")
        return markup

    def _message_json(self, record: BotMessage) -> JSONDict:
        message: JSONDict = {
            "message_id": record.message_id,
            "from": self._bot_user(),
            "chat": dict(self._chats[record.chat_id]),
            "date": record.date,
            "text": record.text,
        }
        if record.edit_date is not None:
            message["edit_date"] = record.edit_date
        if record.entities:
            message["entities"] = copy.deepcopy(record.entities)
        if record.reply_markup and "inline_keyboard" in record.reply_markup:
            message["reply_markup"] = copy.deepcopy(record.reply_markup)
        if record.reply_to_message_id is not None:
            replied = self._chat_messages[record.chat_id].get(record.reply_to_message_id)
            if replied is not None:
                message["reply_to_message"] = _without_reply(replied)
        return message

    # ---------------------------------------------------------------- Bot API methods

    def _m_true(self, params: JSONDict) -> bool:
        return True

    def _m_get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_set_webhook(self, params: JSONDict) -> bool:
        url = str(params.get("url") or "")
        if not url:  # an empty URL removes the webhook
            return self._m_delete_webhook(params)
        parsed = urlparse(url)
        if self.https_only and parsed.scheme != "https":
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise _bad_request("bad webhook: Wrong HTTP URL specified")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.match(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = _as_int(params, "max_connections", required=False) or 40
        if not 1 <= max_connections <= 100:
            raise _bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = params.get("allowed_updates")
        with self._lock:
            if _as_bool(params, "drop_pending_updates"):
                self._updates.clear()
            if isinstance(allowed, list):
                self._allowed_updates = [str(a) for a in allowed]
            self._webhook = Webhook(
                url=url,
                secret_token=str(secret) if secret else None,
                max_connections=max_connections,
                allowed_updates=[str(a) for a in allowed] if isinstance(allowed, list) else None,
                ip_address=str(params["ip_address"]) if params.get("ip_address") else None,
            )
            self._retry_at.clear()
        self._notify()  # a waiting getUpdates ends with 409; the poster starts
        return True

    def _m_delete_webhook(self, params: JSONDict) -> bool:
        with self._lock:
            self._webhook = None
            self._retry_at.clear()
            if _as_bool(params, "drop_pending_updates"):
                self._updates.clear()
        self._notify()
        return True

    def _m_get_webhook_info(self, params: JSONDict) -> JSONDict:
        with self._lock:
            pending = len(self._updates)
            hook = self._webhook
            info: JSONDict = {
                "url": hook.url if hook else "",
                "has_custom_certificate": False,
                "pending_update_count": pending,
            }
            if hook is not None:
                info["max_connections"] = hook.max_connections
                if hook.allowed_updates is not None:
                    info["allowed_updates"] = list(hook.allowed_updates)
                if hook.ip_address:
                    info["ip_address"] = hook.ip_address
                if hook.last_error_date is not None:
                    info["last_error_date"] = hook.last_error_date
                    info["last_error_message"] = hook.last_error_message
        return info

    def _deliverable(self, update: JSONDict) -> bool:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _DEFAULT_EXCLUDED_UPDATES

    async def _m_get_updates(self, params: JSONDict) -> list[JSONDict]:
        offset = _as_int(params, "offset", required=False)
        limit = _as_int(params, "limit", required=False) or 100
        limit = min(max(limit, 1), 100)
        try:
            timeout = float(params.get("timeout") or 0)
        except (TypeError, ValueError):
            raise _bad_request("wrong parameter timeout in request") from None
        timeout = min(max(timeout, 0.0), self.max_poll_timeout)
        allowed = params.get("allowed_updates")
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._webhook is not None:
                raise ApiError(409, _ERR_WEBHOOK_ACTIVE)
            if isinstance(allowed, list):
                self._allowed_updates = [str(a) for a in allowed]
            if offset is not None:
                if offset < 0:
                    self._updates = self._updates[offset:]
                else:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self._poll_generation += 1
            generation = self._poll_generation
        self._notify()  # terminates an older, still waiting getUpdates with 409
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(409, _ERR_CONFLICT)
                if self._webhook is not None:
                    raise ApiError(409, _ERR_WEBHOOK_ACTIVE)
                if self._closing:
                    return []
                self._updates = [u for u in self._updates if self._deliverable(u)]
                ready = copy.deepcopy(self._updates[:limit])
                changed = self._async_changed
            remaining = deadline - loop.time()
            if ready or remaining <= 0 or changed is None:
                return ready
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _m_send_message(self, params: JSONDict) -> JSONDict:
        chat_id = _as_int(params, "chat_id")
        assert chat_id is not None
        visible, source, parse_mode, entities = self._formatted_text(params)
        markup = self._reply_markup(params)
        link_preview = _as_object(params, "link_preview_options", "link preview options")
        reply_params = _as_object(params, "reply_parameters", "reply parameters")
        reply_to = _as_int(params, "reply_to_message_id", required=False)
        allow_without_reply = _as_bool(params, "allow_sending_without_reply")
        if isinstance(reply_params, dict):
            reply_to = _as_int(reply_params, "message_id")
            allow_without_reply = _as_bool(reply_params, "allow_sending_without_reply")
        with self._lock:
            self._check_blocked(chat_id)
            self._chat_for_send(chat_id)
            messages = self._chat_messages.setdefault(chat_id, {})
            if reply_to is not None and reply_to not in messages:
                if not allow_without_reply:
                    raise _bad_request("message to be replied not found")
                reply_to = None
            record = BotMessage(
                chat_id=chat_id,
                message_id=self._new_message_id(chat_id),
                text=visible,
                source=source,
                parse_mode=parse_mode,
                entities=entities,
                reply_markup=markup,
                date=int(time.time()),
                reply_to_message_id=reply_to,
                link_preview_options=link_preview if isinstance(link_preview, dict) else None,
                disable_notification=_as_bool(params, "disable_notification"),
            )
            self._bot_messages.append(record)
            self._bot_index[(chat_id, record.message_id)] = record
            message = self._message_json(record)
            messages[record.message_id] = message
        self._record_event(record, "sent")
        return copy.deepcopy(message)

    def _editable(self, params: JSONDict) -> BotMessage:
        if params.get("inline_message_id"):
            raise _bad_request("inline messages are not supported by the test server")
        chat_id = _as_int(params, "chat_id")
        message_id = _as_int(params, "message_id")
        assert chat_id is not None and message_id is not None
        record = self._bot_index.get((chat_id, message_id))
        if record is None or record.deleted:
            if message_id in self._chat_messages.get(chat_id, {}):
                raise _bad_request("message can't be edited")
            raise _bad_request("message to edit not found")
        return record

    def _apply_edit(
        self,
        record: BotMessage,
        *,
        text: str,
        source: str,
        parse_mode: str | None,
        entities: list[JSONDict],
        markup: JSONDict | None,
    ) -> JSONDict:
        if text == record.text and entities == record.entities and markup == record.reply_markup:
            raise _bad_request(_ERR_NOT_MODIFIED.removeprefix("Bad Request: "))
        record.history.append(
            MessageVersion(
                record.text,
                record.source,
                record.parse_mode,
                record.entities,
                record.reply_markup,
                record.edit_date or record.date,
            )
        )
        record.text, record.source, record.parse_mode = text, source, parse_mode
        record.entities, record.reply_markup = entities, markup
        record.edit_date = int(time.time())
        message = self._message_json(record)
        self._chat_messages[record.chat_id][record.message_id] = message
        return copy.deepcopy(message)

    def _m_edit_message_text(self, params: JSONDict) -> JSONDict:
        with self._lock:
            record = self._editable(params)
            visible, source, parse_mode, entities = self._formatted_text(params)
            # Like Telegram: an edit without reply_markup removes the inline keyboard.
            markup = self._reply_markup(params)
            if record.link_preview_options is None:
                preview = _as_object(params, "link_preview_options", "link preview options")
                record.link_preview_options = preview if isinstance(preview, dict) else None
            message = self._apply_edit(
                record,
                text=visible,
                source=source,
                parse_mode=parse_mode,
                entities=entities,
                markup=markup,
            )
        self._record_event(record, "edited")
        return message

    def _m_edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        with self._lock:
            record = self._editable(params)
            message = self._apply_edit(
                record,
                text=record.text,
                source=record.source,
                parse_mode=record.parse_mode,
                entities=record.entities,
                markup=self._reply_markup(params),
            )
        self._record_event(record, "edited")
        return message

    def _m_delete_message(self, params: JSONDict) -> bool:
        chat_id = _as_int(params, "chat_id")
        message_id = _as_int(params, "message_id")
        assert chat_id is not None and message_id is not None
        with self._lock:
            messages = self._chat_messages.get(chat_id, {})
            if message_id not in messages:
                raise _bad_request("message to delete not found")
            del messages[message_id]
            record = self._bot_index.get((chat_id, message_id))
            if record is not None:
                record.deleted = True
        self._notify()
        return True

    def _m_answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        with self._lock:
            query = self._callback_queries.get(query_id)
            if query is None or query.answered:
                raise ApiError(400, _ERR_BAD_QUERY)
            text = params.get("text")
            if text is not None and len(str(text)) > 200:
                raise _bad_request("MESSAGE_TOO_LONG")
            query.answered = True
            query.answer = {k: v for k, v in params.items() if k != "callback_query_id"}
        self._notify()
        return True

    def _m_set_my_commands(self, params: JSONDict) -> bool:
        commands = _as_object(params, "commands", "bot commands")
        if not isinstance(commands, list):
            raise _bad_request('parameter "commands" is required')
        if len(commands) > 100:
            raise _bad_request("too many commands")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(
                str(command.get("command", ""))
            ):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad_request("command description must be non-empty")
        scope = _as_object(params, "scope", "bot command scope")
        key = _commands_key(scope, str(params.get("language_code") or ""))
        with self._lock:
            self._commands[key] = [
                {"command": str(c["command"]), "description": str(c["description"])}
                for c in commands
            ]
        return True

    def _m_get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        scope = _as_object(params, "scope", "bot command scope")
        scope_dict = scope if isinstance(scope, dict) else None
        return self.commands(scope_dict, str(params.get("language_code") or ""))

    def _m_delete_my_commands(self, params: JSONDict) -> bool:
        scope = _as_object(params, "scope", "bot command scope")
        with self._lock:
            self._commands.pop(_commands_key(scope, str(params.get("language_code") or "")), None)
        return True

    def _m_send_chat_action(self, params: JSONDict) -> bool:
        chat_id = _as_int(params, "chat_id")
        assert chat_id is not None
        if str(params.get("action") or "") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        with self._lock:
            self._check_blocked(chat_id)
            self._chat_for_send(chat_id)
        return True

    def _m_get_chat(self, params: JSONDict) -> JSONDict:
        chat_id = _as_int(params, "chat_id")
        assert chat_id is not None
        with self._lock:
            chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad_request("chat not found")
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _m_get_chat_member(self, params: JSONDict) -> JSONDict:
        chat_id = _as_int(params, "chat_id")
        user_id = _as_int(params, "user_id")
        assert chat_id is not None and user_id is not None
        with self._lock:
            chat = self._chats.get(chat_id)
            status = self._member_status.get((chat_id, user_id), "member")
        if chat is None:
            raise _bad_request("chat not found")
        if user_id == self.bot_id:
            status = "administrator" if chat["type"] != "private" else "member"
            user = self._bot_user()
        else:
            user = self._user(user_id, None, "Test")
        member: JSONDict = {"status": status, "user": user}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(dict.fromkeys(_ADMIN_RIGHTS, False))
            member.update(can_be_edited=False, can_manage_chat=True, can_delete_messages=True)
        elif status == "restricted":
            member.update(dict.fromkeys(_RESTRICTED_FIELDS, True), until_date=0)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    # ---------------------------------------------------------------- /_test control API

    @staticmethod
    async def _ctl_body(request: web.Request) -> JSONDict:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON object") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    async def _ctl_user_sends(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        try:
            update = self.user_sends(
                str(body.pop("text")),
                chat_id=int(body.pop("chat_id")),
                user_id=int(body.pop("user_id")),
                **body,
            )
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": repr(exc)}, status=400)
        return web.json_response(update)

    async def _ctl_user_clicks(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        try:
            update = self.user_clicks(
                int(body.pop("chat_id")),
                int(body.pop("user_id")),
                int(body.pop("message_id")),
                str(body.pop("data")),
                **body,
            )
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": repr(exc)}, status=400)
        return web.json_response(update)

    async def _ctl_sent(self, request: web.Request) -> web.Response:
        chat = request.query.get("chat_id")
        messages = self.sent(int(chat) if chat else None)
        return web.json_response([m.to_json() for m in messages])

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        calls = self.calls(request.query.get("method"))
        return web.json_response([dataclasses.asdict(c) for c in calls])

    async def _ctl_wait_for_message(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        chat = body.get("chat_id")
        contains = body.get("contains")

        def predicate(message: BotMessage) -> bool:
            return contains is None or str(contains) in message.text

        try:
            message = await self.wait_for_message(
                int(chat) if chat is not None else None,
                predicate,
                float(body.get("timeout", 10.0)),
            )
        except TimeoutError as exc:
            return web.json_response({"error": str(exc)}, status=408)
        return web.json_response(message.to_json())

    async def _ctl_block(self, request: web.Request) -> web.Response:
        self.block(int((await self._ctl_body(request))["chat_id"]))
        return web.json_response({"ok": True})

    async def _ctl_unblock(self, request: web.Request) -> web.Response:
        self.unblock(int((await self._ctl_body(request))["chat_id"]))
        return web.json_response({"ok": True})

    async def _ctl_flood(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        self.flood(
            int(body.get("count", 1)),
            retry_after=int(body.get("retry_after", 1)),
            methods=body.get("methods", ["sendMessage"]),
        )
        return web.json_response({"ok": True})

    async def _ctl_webhook(self, request: web.Request) -> web.Response:
        hook = self.webhook
        with self._lock:
            posts = [dataclasses.asdict(p) for p in self._webhook_posts]
        body = {"webhook": dataclasses.asdict(hook) if hook else None, "posts": posts}
        return web.json_response(body)

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _ctl_state(self, request: web.Request) -> web.Response:
        with self._lock:
            state = {
                "pending_updates": len(self._updates),
                "bot_messages": len(self._bot_messages),
                "calls": len(self._calls),
                "commands": {f"{k[0]}|{k[1]}": v for k, v in self._commands.items()},
            }
        return web.json_response(state)


def _without_reply(message: JSONDict) -> JSONDict:
    """A stored message as embedded in ``reply_to_message`` (Telegram does not nest further)."""
    embedded = copy.deepcopy(message)
    embedded.pop("reply_to_message", None)
    return embedded


def _commands_key(scope: object, language_code: str) -> tuple[str, str]:
    if not isinstance(scope, dict):
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True), language_code


# --------------------------------------------------------------------------------------------
# Standalone process
# --------------------------------------------------------------------------------------------


async def serve_until_signalled(service: Any, banner: Callable[[], str]) -> None:
    """Start ``service`` (anything with async ``start``/``stop``: this server, the test
    balancer), print ``banner()``, and stop it on SIGINT or SIGTERM."""
    await service.start()
    print(banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await service.stop()


async def _serve_forever(server: BotApiServer) -> None:
    await serve_until_signalled(
        server, lambda: f"botapi test server listening on {server.url} (base_url {server.base_url})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local fake Telegram Bot API server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--bot-username", default=BOT_USERNAME)
    parser.add_argument(
        "--lenient-ampersand",
        action="store_true",
        help="accept a bare '&' in HTML like real Telegram does",
    )
    parser.add_argument(
        "--strict-chats",
        action="store_true",
        help="answer 'chat not found' for chats no user has written from",
    )
    args = parser.parse_args(argv)
    server = BotApiServer(
        args.token,
        host=args.host,
        port=args.port,
        bot_username=args.bot_username,
        strict_ampersand=not args.lenient_ampersand,
        strict_chats=args.strict_chats,
    )
    asyncio.run(_serve_forever(server))


if __name__ == "__main__":
    main()
