"""Composing the Application: handlers, services at post_init, the index watcher (a JobQueue
job), plugins, and the typed context (``bot.context``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import urlparse

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import handlers as h
from bot.context import CONTEXT_TYPES, App, BotContext, jobs
from bot.format import COMMANDS
from bot.plugins import BotPlugin
from bot.services import BotServices
from index.embedders import Embedder
from newsdesk.settings import BotSettings

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
WATCHER = "newsdesk-index-watcher"
ADMIN_ONLY = {"reindex"}


class FloodLimiter(AIORateLimiter):
    """PTB's limiter for Telegram's flood limits, minus chat actions.

    The limits (30 messages/s overall, 20 per minute in a group) are about messages; a
    "typing…" call counted against them would halve how many answers a group gets per
    minute. A chat action that Telegram refuses (429) is simply not shown.
    """

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        if endpoint == "sendChatAction":
            return await callback(*args, **kwargs)
        return await super().process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )


def file_url_for(base_url: str) -> str:
    """The Bot API file URL beside a base URL: '.../bot' -> '.../file/bot'."""
    root = base_url.rstrip("/")
    root = root[: -len("/bot")] if root.endswith("/bot") else root
    return f"{root}/file/bot"


def add_core_handlers(app: App) -> None:
    message_only = filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler(["start", "help"], h.cmd_help, filters=message_only))
    app.add_handler(CommandHandler("ask", h.cmd_ask, filters=message_only))
    app.add_handler(CommandHandler("stats", h.cmd_stats, filters=message_only))
    app.add_handler(CommandHandler("reindex", h.cmd_reindex, filters=message_only))
    app.add_handler(CallbackQueryHandler(h.on_more_sources, pattern=rf"^{h.MORE}:"))
    private = filters.ChatType.PRIVATE & message_only
    groups = filters.ChatType.GROUPS & message_only
    app.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, h.on_private_text))
    app.add_handler(MessageHandler(groups & filters.TEXT & ~filters.COMMAND, h.on_group_text))


def add_fallback_handlers(app: App) -> None:
    """Added after the plugins' handlers, so a plugin's commands come first."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    app.add_handler(MessageHandler(private & filters.COMMAND, h.on_unknown_command))
    app.add_handler(MessageHandler(private & ~filters.TEXT, h.on_private_other))


def build_application(
    settings: BotSettings,
    *,
    plugins: Sequence[BotPlugin] = (),
    embedder: Embedder | None = None,
    announce: bool = False,
    flood_limit: bool = True,
) -> App:
    """The bot, ready for run_polling/run_webhook (or ``running`` in tests and scripts).

    The model and index load in post_init (``embedder`` skips loading the model, e.g. in
    tests); a watcher task then checks for new index versions every
    ``settings.bot_reload_interval`` seconds. ``plugins`` add handlers, hooks and commands
    (see bot.plugins). ``flood_limit=False`` drops PTB's AIORateLimiter (Telegram's 30
    requests/s), for measuring the bot alone against the local test server.
    """

    async def post_init(app: App) -> None:
        services = await asyncio.to_thread(BotServices.open, settings, embedder)
        app.bot_data.services = services
        for plugin in plugins:
            if plugin.on_index_swap is not None:
                hook = plugin.on_index_swap

                async def on_swap(old: Any, new: Any, hook: Any = hook) -> None:
                    await hook(app, old, new)

                services.swap_hooks.append(on_swap)
        await register_commands(app, settings, plugins)
        app.bot_data.plugin_commands = [c for plugin in plugins for c in plugin.commands]
        interval = settings.bot_reload_interval
        jobs(app).run_repeating(watch_index, interval, first=interval, name=WATCHER)
        for plugin in plugins:
            if plugin.on_start is not None:
                await plugin.on_start(app)
        if announce:
            m = services.engine.index.manifest
            print(
                f"Newsdesk bot @{app.bot.username} is running: index {m.version}, "
                f"{m.articles:,} article(s), {m.passages:,} passages. Ctrl+C stops it.",
                file=sys.stderr,
                flush=True,
            )

    async def post_shutdown(app: App) -> None:
        for job in jobs(app).get_jobs_by_name(WATCHER):
            job.schedule_removal()
        for plugin in reversed(plugins):
            if plugin.on_stop is not None:
                try:
                    await plugin.on_stop(app)
                except Exception:
                    log.exception("Plugin %s failed to stop", plugin.name)
        services, app.bot_data.services = app.bot_data.services, None
        if services is not None:
            services.close()

    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_base_url)
        .base_file_url(file_url_for(settings.telegram_base_url))
        .concurrent_updates(True)
        .context_types(CONTEXT_TYPES)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if flood_limit:  # waits out Telegram's limits and retries after a 429's retry_after
        builder = builder.rate_limiter(FloodLimiter(max_retries=3))
    app: App = builder.build()
    jobs(app)  # the JobQueue must be there (python-telegram-bot[job-queue])
    add_core_handlers(app)
    for plugin in plugins:
        if plugin.setup is not None:
            plugin.setup(app)
    add_fallback_handlers(app)
    app.add_error_handler(h.on_error)
    return app


async def watch_index(context: BotContext) -> None:
    """The index watcher (every ``bot_reload_interval`` seconds): load a new index version
    if there is one. The load runs as a task of its own, so a slow one is not a job still
    running when the next tick comes; a tick during a load does nothing."""
    services = context.bot_data.services
    if services is not None and not services.reloading:
        context.application.create_task(services.check_for_new_version(), name=WATCHER)


async def register_commands(app: App, settings: BotSettings, plugins: Sequence[BotPlugin]) -> None:
    """setMyCommands: everyone's menu, and the admins' with /reindex in their private chats."""
    extra = [BotCommand(c, d) for plugin in plugins for c, d in plugin.commands]
    everyone = [BotCommand(c, d) for c, d in COMMANDS if c not in ADMIN_ONLY] + extra
    admins = [BotCommand(c, d) for c, d in COMMANDS] + extra
    await app.bot.set_my_commands(everyone)
    for admin in settings.admin_ids:
        try:
            await app.bot.set_my_commands(admins, scope=BotCommandScopeChat(admin))
        except TelegramError as exc:  # the admin has not opened a chat with the bot yet
            log.warning("Could not set the admin command menu for %s: %s", admin, exc)


def webhook_options(settings: BotSettings, secret: str) -> dict[str, Any]:
    """Arguments for run_webhook/start_webhook: Telegram posts updates to the public URL
    (a reverse proxy forwards them to listen:port/path); PTB answers 403 to any request
    without the X-Telegram-Bot-Api-Secret-Token header holding ``secret``."""
    return {
        "listen": settings.telegram_webhook_listen,
        "port": settings.telegram_webhook_port,
        "url_path": urlparse(settings.telegram_webhook_url).path.lstrip("/"),
        "webhook_url": settings.telegram_webhook_url,
        "secret_token": secret,
        "allowed_updates": Update.ALL_TYPES,
    }


@contextlib.asynccontextmanager
async def running(
    app: App,
    *,
    poll_timeout: float = 10.0,
    poll_interval: float = 0.0,
    webhook: dict[str, Any] | None = None,
) -> AsyncIterator[App]:
    """Run ``app`` inside an existing event loop (tests, scripts): long polling, or a
    webhook server with ``webhook=webhook_options(...)``.

    Does what ``Application.run_polling``/``run_webhook`` do around post_init and
    post_shutdown, without owning the loop or installing signal handlers.
    """
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        assert app.updater is not None
        if webhook is not None:
            await app.updater.start_webhook(**webhook)
        else:
            await app.updater.start_polling(
                poll_interval=poll_interval,
                timeout=int(poll_timeout),
                allowed_updates=Update.ALL_TYPES,
                error_callback=lambda exc: app.create_task(app.process_error(None, exc)),
            )
        await app.start()
        try:
            yield app
        finally:
            if app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
                if app.post_stop is not None:
                    await app.post_stop(app)
    finally:
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
