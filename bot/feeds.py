"""Following news sources from Telegram: a ``BotPlugin`` on top of ``newsdesk.feeds``.

* ``/sources`` (the bot's admins): list the sources with their last fetch, status and
  article count; ``/sources add URL [NAME]``; ``/sources remove NAME``; ``/sources fetch``
  runs a round now.
* A round runs on the JobQueue every ``NEWSDESK_FEEDS_INTERVAL_MINUTES`` (when
  ``NEWSDESK_FEEDS_ENABLED`` and there are sources). The round and the re-index run in
  threads, so the bot keeps answering. The re-index is the bot's own
  (``BotServices.reindex``, the one /reindex runs): the index's change log records the new
  articles and the swap that follows runs the plugins' ``on_index_swap`` hooks, so topic
  alerts go out exactly as after ``newsdesk reindex`` in another process. No alert code
  here.
* With a shared state database (``NEWSDESK_DATABASE_URL``), the sources are kept there
  (every instance and ``newsdesk sources`` see one list) and a round holds the database's
  ``feeds-round`` lock: a round on another instance makes this one's skip. A scheduled
  round is also skipped when every source was fetched less than half an interval ago (by
  another instance's round), so N instances do not fetch N times per interval.

Enabled by default in ``newsdesk bot`` (``bot/__main__.py``), like topic alerts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import CommandHandler, filters

from bot import format as fmt
from bot import handlers as h
from bot.context import App, BotContext, get_services, jobs
from bot.handlers import Context
from bot.plugins import BotPlugin
from bot.services import BotServices
from corpus.feeds import RoundBusyError, RoundSummary, Source
from corpus.feeds.errors import SourceError
from index.errors import IndexBusyError, NewsdeskError
from newsdesk import feeds
from newsdesk.settings import BotSettings

log = logging.getLogger(__name__)

JOB = "newsdesk-feeds-round"
COMMAND = ("sources", "Followed news sources (admins)")
#: The first scheduled round after a start comes after the interval, or this many seconds
#: if sooner (a bot restarted often still fetches).
FIRST_ROUND_AFTER = 60.0
USAGE = (
    "/sources lists the news sources the archive follows.\n"
    "/sources add URL [name] follows a feed, a sitemap or a page that links to its feed.\n"
    "/sources remove NAME stops following one (its articles stay in the archive).\n"
    "/sources fetch fetches every source now."
)
MAX_SUMMARY_LINES = 30


class FeedService:
    """Runs fetch rounds one at a time: on the schedule and on ``/sources fetch``."""

    def __init__(self, app: App, services: BotServices, *, transport: Any = None) -> None:
        self.app = app
        self.services = services
        self.transport = transport
        self.lock = asyncio.Lock()
        self.rounds = 0  # finished rounds (tests wait on it)
        self.last: RoundSummary | None = None

    @property
    def settings(self) -> BotSettings:
        return self.services.settings

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    @property
    def shared(self) -> bool:
        """Whether the sources and the round lock are in a database other instances share."""
        return self.settings.database_url is not None

    def fetched_recently(self, sources: list[Source], now: float | None = None) -> bool:
        """Whether every source was fetched within half an interval (by any instance)."""
        now = time.time() if now is None else now
        recent = now - self.settings.feeds_interval_minutes * 60 / 2
        return bool(sources) and all(s.last_fetch >= recent for s in sources)

    def start(self) -> None:
        if not self.settings.feeds_enabled:
            log.info("Scheduled fetch rounds are off (NEWSDESK_FEEDS_ENABLED=false)")
            return
        interval = self.settings.feeds_interval_minutes * 60
        first = min(interval, FIRST_ROUND_AFTER)
        jobs(self.app).run_repeating(self._tick, interval, first=first, name=JOB)

    def stop(self) -> None:
        for job in jobs(self.app).get_jobs_by_name(JOB):
            job.schedule_removal()

    async def _tick(self, context: BotContext) -> None:
        """The scheduled job: start a round as a task of its own (so a long round is not a
        job still running at the next tick); a tick during a round does nothing."""
        del context
        if not self.busy:
            self.app.create_task(self.scheduled_round(), name=JOB)

    async def scheduled_round(self) -> None:
        """A round that never raises (errors are logged)."""
        try:
            await self.run_round(skip_when_empty=True)
        except RoundBusyError as exc:
            log.info("Scheduled fetch round skipped: %s", exc)
        except NewsdeskError as exc:
            log.error("Fetch round failed: %s", exc)
        except Exception:
            log.exception("Fetch round failed")

    async def run_round(self, *, skip_when_empty: bool = False) -> RoundSummary | None:
        """Fetch every source (in a thread), then re-index through the bot's services when
        the round wrote articles (or earlier ones still wait). ``None``: nothing to fetch.

        Raises ``RoundBusyError`` (another round runs, e.g. ``newsdesk fetch``)."""
        async with self.lock:
            try:
                settings = self.settings
                database = self.services.database
                if skip_when_empty:
                    sources = await asyncio.to_thread(feeds.list_sources, settings, database)
                    if not sources and not feeds.reindex_pending(settings):
                        return None
                    if self.shared and self.fetched_recently(sources):
                        log.info("Scheduled fetch round skipped: another instance just ran one")
                        if feeds.reindex_pending(settings):
                            await self._reindex()
                        return None
                summary = await asyncio.to_thread(
                    feeds.fetch, settings, transport=self.transport, database=database
                )
                self.last = summary
                for line in summary.lines()[:2]:
                    log.info("Fetch round: %s", line)
                if feeds.reindex_pending(settings):
                    await self._reindex()
                return summary
            finally:
                self.rounds += 1

    async def _reindex(self) -> None:
        """The bot's re-index (as /reindex runs it), then the swap and its hooks (alerts)."""
        seen = feeds.pending_mark(self.settings)
        try:
            report = await self.services.reindex()
        except IndexBusyError as exc:  # `newsdesk reindex` elsewhere: the next round retries
            log.warning("Fetched articles wait for the next round: %s", exc)
            return
        feeds.clear_pending(self.settings, seen)
        log.info(
            "Fetched articles indexed: %s",
            " ".join(report.summary(self.settings.index_path).split()),
        )


def get_feeds(source: Context | App) -> FeedService:
    service = source.bot_data.get(FeedService)
    if service is None:
        raise RuntimeError("Following sources is not running (the plugin's on_start has not run).")
    return service


# ---- wording -----------------------------------------------------------------------------


def format_sources(sources: list[Source], *, interval: float | None) -> str:
    if not sources:
        return fmt.plain("No sources yet. Follow one with /sources add URL [name].")
    when = (
        f"Fetched every {interval:g} min."
        if interval is not None
        else "Scheduled rounds are off: /sources fetch fetches now."
    )
    lines = [f"<b>{len(sources)} source(s).</b> {fmt.plain(when)}"]
    lines += [fmt.plain(f"• {source.describe()}") for source in sources]
    return "\n".join(lines)


def format_summary(summary: RoundSummary | None) -> str:
    if summary is None:
        return fmt.plain("No sources to fetch.")
    lines = summary.lines()
    if len(lines) > MAX_SUMMARY_LINES:
        lines = [*lines[:MAX_SUMMARY_LINES], f"… and {len(lines) - MAX_SUMMARY_LINES} more lines"]
    return f"<b>Fetch round finished.</b>\n<pre>{fmt.plain(chr(10).join(lines))}</pre>"


# ---- the command -------------------------------------------------------------------------


async def cmd_sources(update: Update, context: Context) -> None:
    message = update.effective_message
    user = update.effective_user
    assert message is not None
    services = get_services(context)
    if not h.is_admin(services, user.id if user else None):
        await h.respond(
            update, context, fmt.plain("Sorry, only the bot's admins can manage news sources.")
        )
        return
    service = get_feeds(context)
    settings = services.settings
    words = h.command_argument(message.text or "").split()
    action, args = (words[0].casefold(), words[1:]) if words else ("", [])
    try:
        if action in ("", "list") and not args:
            sources = await asyncio.to_thread(feeds.list_sources, settings, services.database)
            interval = settings.feeds_interval_minutes if settings.feeds_enabled else None
            await h.respond(update, context, format_sources(sources, interval=interval))
        elif action == "add" and 1 <= len(args) <= 2:
            url, name = args[0], (args[1] if len(args) == 2 else None)
            source = await asyncio.to_thread(
                feeds.add_source, settings, url, name, services.database
            )
            when = (
                f"the next round (every {settings.feeds_interval_minutes:g} min)"
                if settings.feeds_enabled
                else "/sources fetch"
            )
            text = f"Following {source.name}: {source.url}\nIts articles arrive with {when}."
            await h.respond(update, context, fmt.plain(text))
        elif action == "remove" and len(args) == 1:
            source = await asyncio.to_thread(
                feeds.remove_source, settings, args[0], services.database
            )
            text = f"Stopped following {source.name}: {source.url}"
            if source.articles:
                text += f"\nIts {source.articles} article(s) stay in the archive."
            await h.respond(update, context, fmt.plain(text))
        elif action == "fetch" and not args:
            if service.busy:
                await h.respond(update, context, fmt.plain("A fetch round is already running."))
                return
            await h.respond(update, context, fmt.plain("Fetching every source; I'll reply here."))
            summary = await service.run_round()
            await h.respond(update, context, format_summary(summary))
        else:
            await h.respond(update, context, fmt.plain(USAGE))
    except (SourceError, RoundBusyError) as exc:
        await h.respond(update, context, fmt.plain(str(exc)))
    except NewsdeskError as exc:  # a damaged source list, a re-index that failed
        await h.respond(update, context, fmt.plain(f"The fetch round failed: {exc}"))


async def add_admin_menu(app: App, admin_ids: list[int]) -> None:
    """Put /sources in the admins' command menus (set by the core at start-up)."""
    for admin in admin_ids:
        scope = BotCommandScopeChat(admin)
        try:
            commands = list(await app.bot.get_my_commands(scope=scope))
            if all(c.command != COMMAND[0] for c in commands):
                await app.bot.set_my_commands([*commands, BotCommand(*COMMAND)], scope=scope)
        except TelegramError as exc:  # the admin has not opened a chat with the bot yet
            log.warning("Could not add /sources to the menu of %s: %s", admin, exc)


# ---- the plugin --------------------------------------------------------------------------


def feeds_plugin(*, transport: Any = None) -> BotPlugin:
    """The sources plugin. ``transport``: an httpx transport for the rounds (tests)."""

    def setup(app: App) -> None:
        message_only = filters.UpdateType.MESSAGE
        app.add_handler(CommandHandler("sources", cmd_sources, filters=message_only))

    async def on_start(app: App) -> None:
        services = get_services(app)
        # the archive is a corpus folder of every re-index, /reindex included
        await asyncio.to_thread(services.settings.use_feeds_archive)
        service = FeedService(app, services, transport=transport)
        app.bot_data.put(service)
        service.start()
        await add_admin_menu(app, services.settings.admin_ids)

    async def on_stop(app: App) -> None:
        service = app.bot_data.pop(FeedService)
        if service is not None:
            service.stop()

    # no public menu entry: /sources is for admins (added to their menus in on_start)
    return BotPlugin("feeds", setup=setup, on_start=on_start, on_stop=on_stop)


plugin = feeds_plugin()  # NEWSDESK_BOT_PLUGINS=bot.feeds:plugin
