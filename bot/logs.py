"""Logging for the bot: the token never reaches a log line, tracebacks included."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from telegram.error import InvalidToken


class RedactFilter(logging.Filter):
    """Replace secrets in a record's message and traceback with '[redacted]'.

    Attach it to handlers (not loggers): handler filters see records propagated from
    every logger, e.g. httpx's "HTTP Request: POST https://api.telegram.org/bot<token>/...".
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave the record to the formatter
            return True
        record.msg, record.args = self._clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


class DropReported(logging.Filter):
    """Drop python-telegram-bot's traceback for a rejected token: main() reports it in a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, InvalidToken)


def setup_logging(level: str, secrets: Iterable[str]) -> RedactFilter:
    """Configure the root logger for the bot and redact ``secrets`` on every handler."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL (with the token) at INFO; keep it at WARNING.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
    redact = RedactFilter(secrets)
    for handler in logging.root.handlers:
        handler.addFilter(DropReported())
        handler.addFilter(redact)
    return redact
