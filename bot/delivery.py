"""Topic alerts, the bot's side apart from its commands: rounds of matching and delivery.

* ``AlertSender`` sends the outbox (``index.subscriptions.SubscriptionStore``): one
  digest per chat, each message marked sent right after it went out. A chat that blocked
  the bot or is gone is paused; a transient error leaves its alerts for a later round.
  Several bot processes may share one state database (or one data folder): each takes a
  lease on the alerts it sends (``SubscriptionStore.lease_due``), so every alert goes out
  once; the alerts of a process that died are sent by another once its lease ends
  (``DEFAULT_LEASE``). The one window left: a process killed after Telegram accepted a
  message and before ``mark_sent`` recorded it; that message goes out again (Telegram has
  no idempotency key), and the next start logs it as a possible repeat.
* ``AlertService`` runs rounds (match the new index versions, then deliver) one at a
  time, on the application's JobQueue: a catch-up round once the bot runs, another after
  each index swap (``trigger``), and a repeating job that retries what a transient error
  held back, what another process still holds (it may die), and matching that another
  process was doing. Matching a new version runs in one process at a time across all
  instances (the database's ``try_lock``); the cursor's compare-and-set stays the safety
  net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden

from bot import alerts_format as afmt
from bot import handlers as h
from bot.context import App, BotContext, jobs
from bot.services import BotServices
from index.alerts import AlertMatcher, ProcessReport, process_new_versions
from index.errors import NewsdeskError
from index.subscriptions import Alert, AlertStateError, SubscriptionStore

log = logging.getLogger(__name__)

PREVIEW_ARTICLES = 3
JOBS = ("newsdesk-alerts-catch-up", "newsdesk-alerts-retry")
MATCH_LOCK = "alert-matching"  # the database lock held while matching new index versions
# Seconds the alerts a process is sending stay reserved to it: long enough for one chat's
# digest through Telegram's flood limits; the wait before another process sends the alerts
# of one that died.
DEFAULT_LEASE = 300.0
# BadRequest texts meaning the chat cannot be reached at all (not a problem of one message).
UNREACHABLE = (
    "chat not found",
    "peer_id_invalid",
    "bot was kicked",
    "user is deactivated",
    "group chat was deactivated",
    "not enough rights to send text",
    "have no rights to send",
)


class Skipped:
    """What ``AlertService.match`` returns when another instance holds the matching lock."""

    def __repr__(self) -> str:
        return "SKIPPED"


SKIPPED = Skipped()


@dataclass(slots=True)
class DeliveryReport:
    messages: int = 0
    sent: list[int] = field(default_factory=list)  # alert ids
    paused: list[int] = field(default_factory=list)  # chat ids
    failed: list[int] = field(default_factory=list)  # alert ids, permanent errors
    retry: list[int] = field(default_factory=list)  # alert ids left pending


class AlertSender:
    """Delivers the outbox's due alerts through ``bot``, under a lease of ``lease`` seconds.

    ``running``: False once the bot is stopping; delivery then stops between chats and
    gives the rest back (sent after the restart, or by another process).
    """

    def __init__(
        self,
        bot: Bot,
        store: SubscriptionStore,
        *,
        lease: float = DEFAULT_LEASE,
        running: Callable[[], bool] = lambda: True,
        owner: str = "",
    ) -> None:
        self.bot = bot
        self.store = store
        self.lease = lease
        self.running = running
        # Who holds a lease: the instance's name when it has one (unique among instances;
        # restarted under the same name, it resumes its own leases at once), else this
        # process (and this sender, should a process run two).
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def deliver(self) -> DeliveryReport:
        """Send every pending alert no other process holds: one digest per chat, chats one
        after another."""
        report = DeliveryReport()
        pending = await asyncio.to_thread(self.store.lease_due, self.owner, self.lease)
        by_chat: dict[int, list[Alert]] = {}
        for alert in pending:
            assert alert.chat_id is not None  # queued alerts always have their chat
            by_chat.setdefault(alert.chat_id, []).append(alert)
        for chat_id, alerts in by_chat.items():
            if not self.running():  # stopping: the rest goes out after the restart
                report.retry += [a.id for a in alerts]
                await asyncio.to_thread(self.store.release, [a.id for a in alerts], self.owner)
                continue
            await self._deliver_chat(chat_id, alerts, report)
        if report.messages or report.paused or report.failed or report.retry:
            log.info(
                "Alerts delivered: %d messages (%d alerts) to %d chats; %d paused chats, "
                "%d failed, %d left for a retry",
                report.messages,
                len(report.sent),
                len(by_chat),
                len(report.paused),
                len(report.failed),
                len(report.retry),
            )
        return report

    async def _deliver_chat(
        self, chat_id: int, alerts: Sequence[Alert], report: DeliveryReport
    ) -> None:
        messages = afmt.format_digest(alerts)
        for number, message in enumerate(messages):
            ids = list(message.alert_ids)
            held = await asyncio.to_thread(
                self.store.begin_attempt, ids, owner=self.owner, lease=self.lease
            )
            if not held:  # our lease ran out and another process took them over
                log.warning("Alerts %s to chat %s are now sent by another process", ids, chat_id)
                continue
            try:
                sent = await self.bot.send_message(
                    chat_id,
                    message.text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=h.NO_PREVIEW,
                )
            except Forbidden as exc:
                await self._pause(chat_id, str(exc), report)
                return
            except BadRequest as exc:
                if any(text in str(exc).lower() for text in UNREACHABLE):
                    await self._pause(chat_id, str(exc), report)
                    return
                log.error("Alert message to chat %s refused, not retried: %s", chat_id, exc)
                await asyncio.to_thread(self.store.mark_failed, ids, str(exc))
                report.failed += ids
                continue
            except ChatMigrated as exc:
                await self._pause(chat_id, f"the group moved to chat {exc.new_chat_id}", report)
                return
            except Exception as exc:  # network, flood limit, server errors: next round
                log.warning("Alerts to chat %s wait for the next round: %r", chat_id, exc)
                rest = [i for m in messages[number:] for i in m.alert_ids]
                await asyncio.to_thread(self.store.note_error, rest, repr(exc))
                await asyncio.to_thread(self.store.release, rest, self.owner)
                report.retry += rest
                return
            await asyncio.to_thread(self.store.mark_sent, ids, [sent.message_id])
            report.messages += 1
            report.sent += ids

    async def _pause(self, chat_id: int, reason: str, report: DeliveryReport) -> None:
        topics = await asyncio.to_thread(self.store.pause_chat, chat_id, reason)
        report.paused.append(chat_id)
        log.warning(
            "Alerts to chat %s paused (%d topics) and its queued alerts dropped: %s",
            chat_id,
            topics,
            reason,
        )


class AlertService:
    """Runs matching + delivery rounds in one task; a trigger during a round queues one more.

    Rounds run as ``Application.create_task`` tasks, so ``Application.stop`` lets a round
    finish its current message (and mark it) before the bot shuts down; a round stops
    between messages once the application is stopping, leaving the rest pending.
    """

    def __init__(
        self,
        app: App,
        services: BotServices,
        store: SubscriptionStore,
        matcher: AlertMatcher,
        *,
        retry_interval: float,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.app = app
        self.services = services
        self.store = store
        self.matcher = matcher
        self.retry_interval = retry_interval
        self.sender = AlertSender(
            app.bot,
            store,
            lease=lease,
            running=lambda: app.running,
            owner=services.settings.instance_name,
        )
        self.rounds = 0  # completed rounds (tests wait on it)
        self._again = False
        self._retry_due = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    # -- scheduling, on the JobQueue ------------------------------------------------------

    def start(self) -> None:
        """Catch up once the application runs, then retry transient failures now and then."""
        queue = jobs(self.app)
        queue.run_once(self._on_start, 0, name=JOBS[0])
        queue.run_repeating(
            self._on_retry_tick, self.retry_interval, first=self.retry_interval, name=JOBS[1]
        )

    async def _on_start(self, context: BotContext) -> None:
        self.trigger("start-up")

    async def _on_retry_tick(self, context: BotContext) -> None:
        if self._retry_due:
            self.trigger("retry")

    def trigger(self, reason: str) -> None:
        """Ask for a round; never runs two at once (a request during a round adds one)."""
        if self._closed or not self.app.running:
            return
        log.debug("Alert round requested (%s)", reason)
        self._again = True
        if self._task is None or self._task.done():
            self._task = self.app.create_task(self._rounds(), name="newsdesk-alerts")

    @property
    def busy(self) -> bool:
        """A round is running or asked for (one task runs rounds, one at a time)."""
        return self._again or (self._task is not None and not self._task.done())

    async def _rounds(self) -> None:
        while self._again and self.app.running:
            self._again = False
            try:
                await self.run_round()
            except NewsdeskError as exc:  # e.g. a damaged alerts.sqlite3: the message says
                log.error("Alert round failed; the next round retries: %s", exc)
                self._retry_due = True
            except Exception:  # a round must never take the bot down
                log.exception("Alert round failed; the next round retries")
                self._retry_due = True
            finally:
                self.rounds += 1

    async def close(self, timeout: float = 10.0) -> None:
        self._closed = True
        for name in JOBS:  # what is still scheduled (none once the JobQueue has stopped)
            for job in jobs(self.app).get_jobs_by_name(name):
                job.schedule_removal()
        task = self._task
        if task is None or task.done():
            return
        with contextlib.suppress(Exception):  # a timeout, or the round's own error
            await asyncio.wait_for(asyncio.shield(task), timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    # -- one round ----------------------------------------------------------------------

    async def run_round(self) -> None:
        matched = await asyncio.to_thread(self.match)
        await self.deliver()
        if matched is SKIPPED:  # come back: the instance matching may die before it queues
            self._retry_due = True

    def match(self) -> ProcessReport | Skipped | None:
        """Queue the alerts of the index versions after the cursor (blocking), unless
        another instance is doing it (``SKIPPED``)."""
        database = self.services.database
        lock = database.try_lock(MATCH_LOCK) if database else contextlib.nullcontext(True)
        with lock as held:
            if not held:
                log.debug("Alert matching left to another instance (it holds the lock)")
                return SKIPPED
            engine = self.services.engine
            try:
                return process_new_versions(
                    self.store, self.services.settings.index_path, engine.index, self.matcher
                )
            except AlertStateError as exc:  # another process matched these versions
                log.warning("Alert matching skipped: %s", exc)
            except NewsdeskError as exc:
                log.error("Alert matching failed: %s", exc)
            return None

    async def deliver(self) -> DeliveryReport:
        report = await self.sender.deliver()
        # Alerts still pending after our round are held by another instance (or were just
        # queued): check again later, so that a dead instance's alerts go out once its
        # lease ends.
        left = await asyncio.to_thread(self.store.has_pending) if not report.retry else False
        self._retry_due = bool(report.retry or left)
        return report

    # -- for the handlers ---------------------------------------------------------------

    async def preview(self, topic: str) -> list[Alert]:
        engine = self.services.engine
        try:
            return await self.services.run(
                self.matcher.preview, topic, engine.index, PREVIEW_ARTICLES
            )
        except NewsdeskError as exc:
            log.warning("No preview for %r: %s", topic, exc)
            return []
