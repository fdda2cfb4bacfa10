"""The extension point: features beyond Q&A (topic alerts, ...) plug in without editing bot/.

A plugin is a ``BotPlugin``; every part is optional::

    def setup(app: Application) -> None:              # in build_application(): after the
        app.add_handler(CommandHandler("alerts", cb))  # core handlers, before the fallbacks
                                                       # ("unknown command"); plain text in
                                                       # private is a question, so a plugin
                                                       # reading free text uses group=1..
    async def on_start(app: Application) -> None:     # post_init, once the engine is loaded;
        services = get_services(app)                   # bot.context: app.bot_data is a
        app.bot_data.put(MyService(services))          # typed BotData; a plugin keeps its
                                                       # service there, found by its class
    async def on_index_swap(app, old, new) -> None:    # after a new index version was loaded
        ...                                            # (hot reload or /reindex): diff
                                                       # old.index.articles / new.index.articles
    plugin = BotPlugin("alerts", setup=setup, on_start=on_start, on_index_swap=on_index_swap,
                       commands=[("alerts", "Manage topic alerts")])

Pass plugins to ``bot.app.build_application(settings, plugins=[plugin])`` or name them in
``NEWSDESK_BOT_PLUGINS=package.module:plugin`` for ``newsdesk bot``. Their commands join the
menu registered with setMyCommands. Hooks run in the order the plugins are given; an
exception in ``on_index_swap`` is logged and does not stop the swap.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telegram.ext import Application

    from index.engine import Engine

    App = Application[Any, Any, Any, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class BotPlugin:
    name: str
    setup: Callable[[App], None] | None = None
    on_start: Callable[[App], Awaitable[None]] | None = None
    on_stop: Callable[[App], Awaitable[None]] | None = None
    on_index_swap: Callable[[App, Engine, Engine], Awaitable[None]] | None = None
    commands: Sequence[tuple[str, str]] = ()


class PluginError(Exception):
    """A plugin named in the settings cannot be imported or is not a BotPlugin."""


def load_plugin(spec: str) -> BotPlugin:
    """Import ``package.module:attribute``: a BotPlugin, or a callable returning one."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise PluginError(f"Plugin {spec!r} must be written as package.module:attribute.")
    try:
        target: object = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"Cannot load plugin {spec!r}: {exc}") from exc
    if not isinstance(target, BotPlugin) and callable(target):
        target = target()
    if not isinstance(target, BotPlugin):
        raise PluginError(f"Plugin {spec!r} is not a bot.plugins.BotPlugin.")
    return target
