"""Thin handlers: parse the update, call the engine (via BotServices) or a formatter, reply.

No retrieval and no message wording here: that lives in ``index`` and ``bot.format``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatID, ChatType, ParseMode
from telegram.error import BadRequest, TelegramError

from bot import format as fmt
from bot.context import BotContext, get_services
from bot.logs import describe_api_error
from bot.services import BotServices
from index.engine import clean_question
from index.errors import BadQuestionError, IndexBusyError, NewsdeskError

log = logging.getLogger(__name__)

MORE = "more"
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
Context = BotContext
CHAT_SENDERS = (ChatID.ANONYMOUS_ADMIN, ChatID.FAKE_CHANNEL)


def is_admin(services: BotServices, user_id: int | None) -> bool:
    return user_id is not None and user_id in services.settings.admin_ids


def more_button(key: str, page: int) -> InlineKeyboardMarkup:
    data = f"{MORE}:{key}:{page}"
    return InlineKeyboardMarkup([[InlineKeyboardButton("More sources", callback_data=data)]])


# ---- sending ----------------------------------------------------------------------------


async def send(
    bot: Bot,
    chat_id: int,
    html_text: str,
    *,
    reply_to: Message | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> Message:
    """Send HTML, split into as many messages as needed; the keyboard goes on the last."""
    chunks = fmt.split_html(html_text) or [fmt.ELLIPSIS]
    reply = (
        ReplyParameters(reply_to.message_id, allow_sending_without_reply=True)
        if reply_to is not None and reply_to.chat.type != ChatType.PRIVATE
        else None
    )
    thread = reply_to.message_thread_id if reply_to and reply_to.is_topic_message else None
    sent: Message | None = None
    for number, chunk in enumerate(chunks, 1):
        sent = await bot.send_message(
            chat_id,
            chunk,
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            reply_parameters=reply,
            message_thread_id=thread,
            reply_markup=markup if number == len(chunks) else None,
        )
    assert sent is not None
    return sent


async def respond(update: Update, context: Context, html_text: str, **kwargs: Any) -> Message:
    message = update.effective_message
    assert message is not None
    return await send(context.bot, message.chat_id, html_text, reply_to=message, **kwargs)


@contextlib.asynccontextmanager
async def typing(bot: Bot, message: Message, every: float = 4.5) -> AsyncIterator[None]:
    """Show 'typing…' in the chat until the block ends (Telegram shows it for ~5 s a call)."""
    thread = message.message_thread_id if message.is_topic_message else None

    async def show() -> None:
        try:
            await bot.send_chat_action(message.chat_id, ChatAction.TYPING, message_thread_id=thread)
        except TelegramError as exc:
            log.debug("sendChatAction failed: %s", exc)

    async def keep_typing() -> None:
        while True:
            await asyncio.sleep(every)
            await show()

    # The first indicator goes out before the work starts: a fast answer would otherwise
    # cancel the background task before it ever sent one.
    await show()
    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- questions --------------------------------------------------------------------------


def rate_key(update: Update) -> int | None:
    """Whose limit a message counts against: its sender, or the chat it was sent on behalf
    of (an anonymous admin, a channel), whose sender id is shared by every such chat.
    User ids are positive and group and channel ids negative, so the keys never meet."""
    message, user = update.effective_message, update.effective_user
    if update.callback_query is None and message is not None:
        # @GroupAnonymousBot (an anonymous admin, in every group) and @Channel_Bot (a
        # channel posting in a group) stand for a whole chat: limited per chat.
        on_behalf = message.sender_chat or (
            message.chat if user is not None and user.id in CHAT_SENDERS else None
        )
        if on_behalf is not None:
            return on_behalf.id
    return user.id if user is not None else None


async def rate_limited(update: Update, context: Context) -> bool:
    """True when the asker is over the question limit; the first refusal of a window also
    tells them when to ask again, later ones are silent. The bot's admins are not limited."""
    services = get_services(context)
    key = rate_key(update)
    user = update.effective_user
    if key is None or (key > 0 and is_admin(services, user.id if user else None)):
        return False
    verdict = await services.limiter.check_async(key)
    if verdict.notify:
        await respond(update, context, fmt.plain(fmt.format_rate_limited(verdict.wait)))
    return not verdict.allowed


async def answer_question(
    update: Update, context: Context, text: str, *, prefer_doc_ids: Sequence[str] = ()
) -> None:
    """Validate, rate-limit, ask the engine, reply with the formatted answer.

    ``prefer_doc_ids``: articles to answer from first (a reply to an alert about them)."""
    services = get_services(context)
    message = update.effective_message
    assert message is not None
    try:
        question = clean_question(text, services.settings.max_question_chars)
    except BadQuestionError as exc:
        await respond(update, context, fmt.plain(str(exc)))
        return
    if await rate_limited(update, context):
        return
    async with typing(context.bot, message):
        try:
            answer = await services.ask(question, k=10, prefer_doc_ids=prefer_doc_ids)
        except BadQuestionError as exc:
            await respond(update, context, fmt.plain(str(exc)))
            return
    passage = answer.passage if answer.answered else None
    quoted = (passage.doc_id, passage.start) if passage is not None else None
    markup = None
    if len(answer.hits) > (1 if quoted else 0):
        key = await asyncio.to_thread(
            services.questions.put, question, quoted, chat_id=message.chat_id
        )
        markup = more_button(key, 1)
    text_html = fmt.format_answer(answer, sources=services.settings.bot_sources)
    await respond(update, context, text_html, markup=markup)


def command_argument(text: str) -> str:
    """What follows '/command' (or '/command@bot') in a message."""
    parts = text.split(None, 1)
    return parts[1] if len(parts) > 1 else ""


async def cmd_ask(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None
    question = command_argument(message.text or "")
    if not question.strip() and message.reply_to_message and message.reply_to_message.text:
        question = message.reply_to_message.text  # "/ask" in reply to someone's question
    if not question.strip():
        services = get_services(context)
        example = services.examples[0] if services.examples else "when does the base lease end?"
        await respond(update, context, fmt.format_ask_usage(example))
        return
    await answer_question(update, context, question)


async def on_private_text(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None
    await answer_question(update, context, message.text or "")


def addressed_text(message: Message, username: str, bot_id: int) -> str | None:
    """In a group: the question if the message mentions the bot or replies to it, else None."""
    text = message.text or ""
    kinds = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    mentioned = any(
        (value[1:].lower() == username.lower())
        if entity.type == MessageEntity.MENTION
        else (entity.user is not None and entity.user.id == bot_id)
        for entity, value in message.parse_entities(kinds).items()
    )
    replied = message.reply_to_message
    to_bot = (
        replied is not None and replied.from_user is not None and (replied.from_user.id == bot_id)
    )
    if not (mentioned or to_bot):
        return None
    if username:
        text = re.sub(rf"@{re.escape(username)}\b", " ", text, flags=re.IGNORECASE)
    return text


async def on_group_text(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None
    question = addressed_text(message, context.bot.username or "", context.bot.id)
    if question is None:
        return  # chatter between people: not for us
    if not question.strip():
        await respond(update, context, fmt.plain("Yes? Ask me a question about the news."))
        return
    await answer_question(update, context, question)


async def on_private_other(update: Update, context: Context) -> None:
    await respond(update, context, fmt.plain("Please send your question as text."))


async def on_unknown_command(update: Update, context: Context) -> None:
    await respond(update, context, fmt.plain("I don't know that command. Try /help."))


# ---- "More sources" ---------------------------------------------------------------------


_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() accepts "²", int() does not


def ascii_int(text: str) -> int | None:
    """A number typed or put in callback data ("2"), or None ("²", "٣", "", "1e9")."""
    return int(text) if _NUMBER.fullmatch(text) else None


def parse_more(data: str) -> tuple[str, int] | None:
    parts = data.split(":")
    page = ascii_int(parts[2]) if len(parts) == 3 and parts[0] == MORE else None
    return None if page is None else (parts[1], max(1, page))


async def on_more_sources(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    services = get_services(context)
    parsed = parse_more(query.data or "")
    chat = update.effective_chat
    stored = None
    if parsed is not None and chat is not None:  # a key works only in the chat that asked
        stored = await asyncio.to_thread(services.questions.get, parsed[0], chat_id=chat.id)
    if parsed is None or stored is None:
        await query.answer(fmt.EXPIRED, show_alert=True)
        with contextlib.suppress(TelegramError):
            await query.edit_message_reply_markup(reply_markup=None)
        return
    if not is_admin(services, query.from_user.id):
        verdict = await services.limiter.check_async(query.from_user.id)
        if not verdict.allowed:  # a pop-up for the clicker, not a message in the chat
            await query.answer(fmt.format_rate_limited(verdict.wait)[: fmt.CALLBACK_LIMIT])
            return
    await query.answer()
    _key, page = parsed
    size = services.settings.bot_page_size
    message = query.message if isinstance(query.message, Message) else None
    chat_id = update.effective_chat.id if update.effective_chat else query.from_user.id
    if message is not None:
        async with typing(context.bot, message):
            hits = await services.search(stored.question, k=page * size + 2)
    else:
        hits = await services.search(stored.question, k=page * size + 2)
    result = fmt.format_more_sources(hits, page=page, page_size=size, skip=stored.quoted)
    markup = more_button(stored.key, page + 1) if result.has_more else None
    await send(context.bot, chat_id, result.text, reply_to=message, markup=markup)
    with contextlib.suppress(TelegramError):  # one click per button
        await query.edit_message_reply_markup(reply_markup=None)


# ---- commands ---------------------------------------------------------------------------


async def cmd_help(update: Update, context: Context) -> None:
    services = get_services(context)
    chat = update.effective_chat
    user = update.effective_user
    text = fmt.format_help(
        services.examples,
        is_admin=is_admin(services, user.id if user else None),
        in_group=chat is not None and chat.type != ChatType.PRIVATE,
        extra_commands=context.bot_data.plugin_commands,
    )
    await respond(update, context, text)


async def cmd_stats(update: Update, context: Context) -> None:
    services = get_services(context)
    index = services.engine.index
    m = index.manifest
    text = fmt.format_stats(
        articles=m.articles,
        passages=m.passages,
        version=m.version,
        created_at=m.created_at,
        model=m.model_name,
    )
    await respond(update, context, text)


async def cmd_reindex(update: Update, context: Context) -> None:
    services = get_services(context)
    user = update.effective_user
    if not is_admin(services, user.id if user else None):
        await respond(
            update,
            context,
            fmt.plain("Sorry, only the bot's admins can re-index the archive."),
        )
        return
    if services.reindexing:
        await respond(update, context, fmt.plain("A re-index is already running."))
        return
    await respond(
        update, context, fmt.plain("Re-indexing the archive; I'll reply here when it's done.")
    )
    try:
        report = await services.reindex()
    except IndexBusyError as exc:
        await respond(update, context, fmt.plain(str(exc)))
        return
    except NewsdeskError as exc:
        await respond(update, context, fmt.plain(f"The re-index failed: {exc}"))
        return
    summary = report.summary(services.settings.index_path)
    await respond(
        update, context, fmt.format_reindex(summary, serving=services.engine.index.version)
    )


# ---- errors -----------------------------------------------------------------------------


async def on_error(update: object, context: Context) -> None:
    """The one error handler (handlers, and polling the Bot API): our own errors and the Bot
    API's in one line, anything else with its traceback (the token is redacted by
    bot.logs); then a brief apology to the user, if there is one."""
    error = context.error
    where = f"update {update.update_id}" if isinstance(update, Update) else "polling"
    if isinstance(error, NewsdeskError):
        log.error("Error while handling %s: %s", where, error)
    elif isinstance(error, TelegramError) and not isinstance(error, BadRequest):
        log.warning("Bot API error while handling %s: %s", where, describe_api_error(error))
    else:  # a bug of ours (a BadRequest too: a message Telegram would not take)
        log.error("Error while handling %s", where, exc_info=error)
    if not isinstance(update, Update):
        return
    with contextlib.suppress(TelegramError):
        if update.callback_query is not None:
            await update.callback_query.answer(APOLOGY, show_alert=True)
        elif update.effective_message is not None:
            await respond(update, context, fmt.plain(APOLOGY))
