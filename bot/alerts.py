"""Topic alerts in Telegram: a ``BotPlugin`` on top of ``index.alerts`` / ``index.subscriptions``.

* ``/subscribe TOPIC`` saves a topic and previews the archive's best matches; ``/topics``
  lists the chat's topics with a remove button each; ``/unsubscribe`` offers the same
  buttons plus "All topics" (``/unsubscribe all``, ``/unsubscribe N`` and
  ``/unsubscribe TOPIC`` work without buttons). In groups only the group's admins (and the
  bot's admins) change topics; whoever added a topic may also remove it.
* After each index swap (hot reload or /reindex) and once at start-up (catch-up after
  downtime), a round matches the new articles and delivers the store's outbox
  (``bot.delivery``: rounds on the JobQueue, leases, one digest per chat).
* A reply to an alert message is answered from that message's articles first.

The plugin is enabled by default in ``newsdesk bot``; handlers stay thin (wording lives in
``bot.alerts_format``, matching and state in ``index``, delivery in ``bot.delivery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatID, ChatMemberStatus, ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import alerts_format as afmt
from bot import format as fmt
from bot import handlers as h
from bot.context import App, get_services
from bot.delivery import DEFAULT_LEASE, AlertService
from bot.handlers import Context
from bot.plugins import BotPlugin
from index.alerts import DEFAULT_THRESHOLD, AlertMatcher
from index.engine import Engine
from index.subscriptions import (
    MAX_TOPIC_CHARS,
    MAX_TOPICS_PER_CHAT,
    Subscription,
    SubscriptionError,
    SubscriptionNotFoundError,
    clean_topic,
    topic_key,
)

log = logging.getLogger(__name__)


CALLBACK = "alerts"  # callback data: "alerts:rm:<subscription id>", "alerts:all"
MAX_REPLY_DOCS = 5  # articles of one digest message tried for a reply
ADMIN_STATUSES = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR}
COMMANDS = [
    ("subscribe", "Get new articles on a topic: /subscribe TOPIC"),
    ("topics", "Topics this chat follows"),
    ("unsubscribe", "Stop alerts on a topic, or all"),
]


def get_alerts(source: Context | App) -> AlertService:
    service = source.bot_data.get(AlertService)
    if service is None:
        raise RuntimeError("Topic alerts are not running (the plugin's on_start has not run).")
    return service


# ---- permissions -------------------------------------------------------------------------


async def may_change(update: Update, context: Context, created_by: int | None = None) -> bool:
    """Private chats: yes. Groups: the group's admins, the bot's admins, and whoever
    added the topic in question (``created_by``)."""
    chat = update.effective_chat
    user = update.effective_user
    if chat is None or chat.type == ChatType.PRIVATE:
        return True
    message = update.effective_message
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id == chat.id  # an anonymous admin posts as the group
    if user is None:
        return False
    if h.is_admin(get_services(context), user.id) or (created_by == user.id):
        return True
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.warning("getChatMember(%s, %s) failed: %s", chat.id, user.id, exc)
        return False
    return member.status in ADMIN_STATUSES


def acting_user(update: Update) -> int | None:
    """Who adds a topic (None for an anonymous group admin)."""
    user = update.effective_user
    return None if user is None or user.id == ChatID.ANONYMOUS_ADMIN else user.id


# ---- commands ----------------------------------------------------------------------------


def topics_keyboard(subs: Sequence[Subscription], *, with_all: bool) -> InlineKeyboardMarkup | None:
    rows = [
        [InlineKeyboardButton(afmt.button_label(s), callback_data=f"{CALLBACK}:rm:{s.id}")]
        for s in subs
    ]
    if with_all and len(subs) > 1:
        rows.append([InlineKeyboardButton("All topics", callback_data=f"{CALLBACK}:all")])
    return InlineKeyboardMarkup(rows) if rows else None


async def cmd_subscribe(update: Update, context: Context) -> None:
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None
    alerts = get_alerts(context)
    topic = h.command_argument(message.text or "")
    if not topic.strip():
        await h.respond(update, context, afmt.format_subscribe_usage())
        return
    try:
        clean_topic(topic, alerts.store.max_topic_chars)
    except SubscriptionError as exc:
        await h.respond(update, context, fmt.plain(afmt.format_subscription_error(exc)))
        return
    if not await may_change(update, context):
        await h.respond(update, context, fmt.plain(afmt.GROUP_RULE))
        return
    if await h.rate_limited(update, context):  # its preview is a search
        return
    try:
        sub = await asyncio.to_thread(alerts.store.add, chat.id, topic, acting_user(update))
    except SubscriptionError as exc:
        await h.respond(update, context, fmt.plain(afmt.format_subscription_error(exc)))
        return
    async with h.typing(context.bot, message):
        preview = await alerts.preview(sub.topic)
    await h.respond(update, context, afmt.format_subscribed(sub, preview))


async def cmd_topics(update: Update, context: Context) -> None:
    await show_topics(update, context, with_all=False)


async def show_topics(update: Update, context: Context, *, with_all: bool) -> None:
    chat = update.effective_chat
    assert chat is not None
    alerts = get_alerts(context)
    subs = await asyncio.to_thread(alerts.store.list, chat.id)
    text = afmt.format_topics(subs, alerts.store.max_topics, removing=with_all)
    await h.respond(update, context, text, markup=topics_keyboard(subs, with_all=with_all))


async def cmd_unsubscribe(update: Update, context: Context) -> None:
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None
    store = get_alerts(context).store
    wanted = h.command_argument(message.text or "").strip()
    if not wanted:
        await show_topics(update, context, with_all=True)
        return
    all_topics = wanted.casefold() == "all"
    sub = None if all_topics else find_topic(await asyncio.to_thread(store.list, chat.id), wanted)
    text, _ = await remove_topics(update, context, chat.id, sub, all_topics=all_topics)
    await h.respond(update, context, fmt.plain(text))


async def remove_topics(
    update: Update,
    context: Context,
    chat_id: int,
    sub: Subscription | None,
    *,
    all_topics: bool = False,
) -> tuple[str, bool]:
    """Remove ``sub`` (None: not found) or every topic of the chat, as the group rule
    allows: the reply, and whether the rule refused it (/unsubscribe and its buttons)."""
    store = get_alerts(context).store
    if all_topics:
        if not await may_change(update, context):
            return afmt.GROUP_RULE, True
        count = await asyncio.to_thread(store.remove_all, chat_id)
        return afmt.format_removed_all(count), False
    if sub is None:
        return afmt.NOT_FOUND, False
    if not await may_change(update, context, sub.created_by):
        return afmt.GROUP_RULE, True
    try:
        removed = await asyncio.to_thread(store.remove, chat_id, sub.id)
    except SubscriptionNotFoundError:
        return afmt.NOT_FOUND, False
    return afmt.format_removed(removed.topic), False


def find_topic(subs: Sequence[Subscription], wanted: str) -> Subscription | None:
    """'/unsubscribe 2' (the number in /topics) or '/unsubscribe the topic's words'."""
    number = h.ascii_int(wanted)
    if number is not None:
        return subs[number - 1] if 1 <= number <= len(subs) else None
    key = topic_key(wanted)
    return next((s for s in subs if topic_key(s.topic) == key), None)


async def on_topic_button(update: Update, context: Context) -> None:
    query, chat = update.callback_query, update.effective_chat
    assert query is not None and chat is not None
    store = get_alerts(context).store
    parts = (query.data or "").split(":")
    message = query.message if isinstance(query.message, Message) else None
    with_all = message is not None and any(
        b.callback_data == f"{CALLBACK}:all"
        for row in (message.reply_markup.inline_keyboard if message.reply_markup else ())
        for b in row
    )
    all_topics = parts[1:2] == ["all"]
    sub = None
    if not all_topics:
        sub_id = h.ascii_int(parts[2]) if len(parts) == 3 else None
        sub = None if sub_id is None else await asyncio.to_thread(store.get, sub_id)
        if sub is not None and sub.chat_id != chat.id:
            sub = None
    text, refused = await remove_topics(update, context, chat.id, sub, all_topics=all_topics)
    await query.answer(text[: fmt.CALLBACK_LIMIT], show_alert=refused)
    if refused:
        return
    if all_topics:
        with contextlib.suppress(TelegramError):
            await query.edit_message_text(fmt.plain(text), parse_mode=ParseMode.HTML)
        return
    subs = await asyncio.to_thread(store.list, chat.id)
    with contextlib.suppress(TelegramError):  # "message is not modified" and the like
        await query.edit_message_text(
            afmt.format_topics(subs, store.max_topics, removing=with_all),
            parse_mode=ParseMode.HTML,
            reply_markup=topics_keyboard(subs, with_all=with_all),
        )


# ---- replies to alerts -------------------------------------------------------------------


async def on_reply(update: Update, context: Context) -> None:
    """A reply to one of the bot's alert messages: answer from its articles, and stop the
    core handlers; any other message falls through to them."""
    message = update.effective_message
    assert message is not None
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != context.bot.id:
        return
    alerts = get_alerts(context)
    doc_ids = await asyncio.to_thread(
        alerts.store.docs_for_message, message.chat_id, replied.message_id
    )
    if not doc_ids:
        return
    text = h.addressed_text(message, context.bot.username or "", context.bot.id) or ""
    if text.strip():
        await h.answer_question(update, context, text, prefer_doc_ids=doc_ids[:MAX_REPLY_DOCS])
    else:
        await h.respond(update, context, fmt.plain("Ask me a question about this article."))
    raise ApplicationHandlerStop


# ---- the plugin --------------------------------------------------------------------------


def alerts_plugin(
    *,
    threshold: float = DEFAULT_THRESHOLD,
    retry_interval: float | None = None,
    max_topics: int = MAX_TOPICS_PER_CHAT,
    max_topic_chars: int = MAX_TOPIC_CHARS,
    lease: float = DEFAULT_LEASE,
) -> BotPlugin:
    """The topic-alerts plugin. ``threshold``: the matcher's (default: calibrated for the
    default model; another model needs its own, see docs/alerts.md);
    ``retry_interval``: seconds before alerts held back by a transient error are tried
    again (default: the reload interval, at least 10 s); ``lease``: seconds the alerts
    being sent stay reserved to this process (see ``DEFAULT_LEASE``)."""

    def setup(app: App) -> None:
        message_only = filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler("subscribe", cmd_subscribe, filters=message_only))
        app.add_handler(CommandHandler("topics", cmd_topics, filters=message_only))
        app.add_handler(CommandHandler("unsubscribe", cmd_unsubscribe, filters=message_only))
        app.add_handler(CallbackQueryHandler(on_topic_button, pattern=rf"^{CALLBACK}:"))
        replies = message_only & filters.TEXT & ~filters.COMMAND & filters.REPLY
        app.add_handler(MessageHandler(replies, on_reply), group=-1)  # before the core's

    async def on_start(app: App) -> None:
        services = get_services(app)
        store = await asyncio.to_thread(
            services.subscription_store,  # the shared database, or alerts.sqlite3 as before
            max_topics=max_topics,
            max_topic_chars=max_topic_chars,
        )
        # this instance's own sends in flight too, when it restarts under its name
        repeats = await asyncio.to_thread(store.interrupted, services.settings.instance_name)
        if repeats:
            log.warning(
                "%d alert(s) were being sent when the bot stopped; they go out again and "
                "may repeat: %s",
                len(repeats),
                ", ".join(f"chat {a.chat_id}/{a.doc_id}" for a in repeats[:10]),
            )
        interval = retry_interval or max(services.settings.bot_reload_interval, 10.0)
        service = AlertService(
            app,
            services,
            store,
            AlertMatcher(services.embedder, threshold),
            retry_interval=interval,
            lease=lease,
        )
        app.bot_data.put(service)
        service.start()

    async def on_stop(app: App) -> None:
        service = app.bot_data.pop(AlertService)
        if service is not None:
            await service.close()

    async def on_index_swap(app: App, old: Engine, new: Engine) -> None:
        del old, new
        service = app.bot_data.get(AlertService)
        if service is not None:
            service.trigger("index swap")

    return BotPlugin(
        "alerts",
        setup=setup,
        on_start=on_start,
        on_stop=on_stop,
        on_index_swap=on_index_swap,
        commands=COMMANDS,
    )


plugin = alerts_plugin()  # NEWSDESK_BOT_PLUGINS=bot.alerts:plugin
