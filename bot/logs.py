"""Logging for the bot: the token never reaches a log line, tracebacks included; errors of
the Bot API (not of the bot) are described in one line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from telegram.error import InvalidToken, TelegramError

# What python-telegram-bot raises when a Bot API answer is not JSON (an HTML error page of
# a proxy, a captive portal, a wrong NEWSDESK_TELEGRAM_BASE_URL); other errors chain it.
_NOT_JSON = "Invalid server response"
MAX_DESCRIPTION = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by '[redacted]', whatever its letter case
    (a URL or an error message may have lower- or upper-cased it)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = re.sub(re.escape(secret), "[redacted]", text, flags=re.IGNORECASE)
    return text


def not_json(error: BaseException) -> bool:
    """True when ``error`` comes from a Bot API answer that was not JSON."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, TelegramError) and seen.message == _NOT_JSON:
            return True
        seen = seen.__cause__
    return False


def describe_api_error(error: TelegramError) -> str:
    """One line about an error of the Bot API (never the page it answered with)."""
    if not_json(error):
        return "the Bot API answered with something that is not JSON (not a Bot API server?)"
    text = " ".join(str(error).split())
    text = re.sub(r"\. Parsing the server response b?['\"].*", "", text)  # PTB quotes the body
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


class RedactFilter(logging.Filter):
    """Replace secrets in a record's message and traceback with '[redacted]'.

    Attach it to handlers (not loggers): handler filters see records propagated from
    every logger, e.g. httpx's "HTTP Request: POST https://api.telegram.org/bot<token>/...".
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        return redact(text, self.secrets)

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
    """Drop python-telegram-bot's tracebacks for errors that are reported in one line
    elsewhere: a rejected token and whatever ends its start-up retry loop (it re-raises
    them to main()), and an answer that is not JSON (PTB logs the page it got, then raises
    a TelegramError that reaches main() or the error handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, InvalidToken):
            return False
        if not record.name.startswith("telegram"):
            return True
        message = str(record.msg)
        if message.startswith("Can not load invalid JSON data"):
            return False
        return not ("Aborting" in message and isinstance(error, TelegramError))


def setup_logging(level: str, secrets: Iterable[str]) -> RedactFilter:
    """Configure the root logger for the bot and redact ``secrets`` on every handler."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL (with the token) at INFO; keep it at WARNING.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
    redact_filter = RedactFilter(secrets)
    for handler in logging.root.handlers:
        handler.addFilter(DropReported())
        handler.addFilter(redact_filter)
    return redact_filter
