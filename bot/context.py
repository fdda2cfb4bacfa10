"""The bot's typed context: what handlers, jobs and plugins reach through ``context``.

``build_application`` passes ``CONTEXT_TYPES`` to PTB, so ``context.bot_data`` (and
``application.bot_data``) is a ``BotData``, not a dict with string keys: the services
built at start-up, the plugins' commands, and each plugin's own service, found by its
class (``bot_data.put(service)`` / ``bot_data.get(AlertService)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot, JobQueue

if TYPE_CHECKING:
    from bot.services import BotServices

T = TypeVar("T")


class BotData:
    """``bot_data`` of the application (made by PTB, empty until post_init fills it)."""

    def __init__(self) -> None:
        self.services: BotServices | None = None
        self.plugin_commands: list[tuple[str, str]] = []
        self._parts: dict[type, object] = {}

    def put(self, part: object) -> None:
        """Keep a plugin's service, to be found by its class."""
        self._parts[type(part)] = part

    def get(self, kind: type[T]) -> T | None:
        part = self._parts.get(kind)
        return part if isinstance(part, kind) else None

    def pop(self, kind: type[T]) -> T | None:
        part = self._parts.pop(kind, None)
        return part if isinstance(part, kind) else None


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    """The context of every handler and job of the bot."""


CONTEXT_TYPES = ContextTypes(context=BotContext, bot_data=BotData)
App = Application[
    ExtBot[None], BotContext, dict[Any, Any], dict[Any, Any], BotData, JobQueue[BotContext]
]


def get_services(source: BotContext | App) -> BotServices:
    """The services built at start-up, from a handler's context or the application."""
    services = source.bot_data.services
    if services is None:
        raise RuntimeError("The bot's services are not loaded (post_init has not run).")
    return services


def jobs(app: App) -> JobQueue[BotContext]:
    """The application's JobQueue: the index watcher and the alert rounds run on it."""
    if app.job_queue is None:
        raise RuntimeError(
            "The bot needs PTB's JobQueue: install python-telegram-bot[job-queue] (APScheduler)."
        )
    return app.job_queue
