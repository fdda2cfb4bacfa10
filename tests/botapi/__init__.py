"""A local fake Telegram Bot API server for end-to-end tests (see :mod:`tests.botapi.server`).

Names are re-exported lazily so that ``python -m tests.botapi.server`` does not import the
module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.botapi.server import (
        BOT_USERNAME,
        DEFAULT_TOKEN,
        MAX_TEXT_LENGTH,
        ApiError,
        BotApiServer,
        BotMessage,
        CallRecord,
        EntityParseError,
        MessageVersion,
        parse_html,
    )

__all__ = [
    "BOT_USERNAME",
    "DEFAULT_TOKEN",
    "MAX_TEXT_LENGTH",
    "ApiError",
    "BotApiServer",
    "BotMessage",
    "CallRecord",
    "EntityParseError",
    "MessageVersion",
    "parse_html",
]


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module("tests.botapi.server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
