"""``newsdesk bot`` / ``python -m bot``: check the settings, then run the bot.

Configuration problems end with a one-paragraph message and exit code 2, never a
traceback; a failure at run time (no index, Telegram unreachable) ends with exit code 1.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Sequence
from urllib.parse import urlparse

from pydantic import ValidationError
from telegram import Update
from telegram.error import InvalidToken, NetworkError, TelegramError

from bot.logs import describe_api_error, not_json, redact, setup_logging
from bot.plugins import PluginError, load_plugin
from index.errors import NewsdeskError
from newsdesk.messages import error_message
from newsdesk.settings import BotSettings, settings_problems

EXIT_RUNTIME = 1
EXIT_CONFIG = 2

_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,128}$")
_TOKEN_INSIDE = re.compile(r"\d{5,20}:[A-Za-z0-9_-]{20,128}")  # a real-looking one in text
_PLACEHOLDER = re.compile(r"your|token|replace|change.?me|placeholder|example|secret", re.I)
_DOC_EXAMPLES = {  # tokens printed in Telegram's documentation
    "123456789:ABCdefGhIJKlmnOPQRstuVWXyz",
    "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
}
TELEGRAM_API_HOST = "api.telegram.org"
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
HOW_TO = "Create a bot with @BotFather and put its token in .env (see docs/bot.md)."


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be a bot token from @BotFather, or None when it may be one.
    Never quotes the value: it may hold a real token."""
    token = token.strip()
    if not token:
        return f"NEWSDESK_TELEGRAM_TOKEN is empty. {HOW_TO}"
    if not _TOKEN.match(token) and _TOKEN_INSIDE.search(token):
        return (
            "NEWSDESK_TELEGRAM_TOKEN is malformed: it holds a token and more (pasted with "
            "other text, such as the variable's name or BotFather's sentence?). Keep only "
            "the token, e.g. 123456789:AAH..."
        )
    tail = token.partition(":")[2]
    repeated = len(tail) > 1 and len(set(tail)) == 1  # 123456789:XXXXXXXX
    if token in _DOC_EXAMPLES or _PLACEHOLDER.search(token) or repeated:
        return f"NEWSDESK_TELEGRAM_TOKEN is still a placeholder. {HOW_TO}"
    if not _TOKEN.match(token):
        return (
            "NEWSDESK_TELEGRAM_TOKEN is malformed: it does not look like a bot token (digits, "
            f"a colon, then letters, digits, '_' or '-', e.g. 123456789:AAH...). {HOW_TO}"
        )
    return None


def webhook_url_problem(webhook_url: str, base_url: str) -> str | None:
    """Why Telegram cannot post updates to ``webhook_url``, or None.

    api.telegram.org posts only to https:// URLs; a local Bot API server
    (``NEWSDESK_TELEGRAM_BASE_URL`` pointing anywhere else, e.g. telegram-bot-api --local)
    also posts to http://, e.g. to a load balancer in front of several bot instances on the
    same private network."""
    url = urlparse(webhook_url)
    local_api = urlparse(base_url).hostname != TELEGRAM_API_HOST
    if url.scheme == "https" and url.netloc:
        return None
    if url.scheme == "http" and url.netloc:
        if local_api:
            return None
        return (
            "NEWSDESK_TELEGRAM_WEBHOOK_URL is http://, but Telegram posts updates only to "
            "https:// URLs. Use an https:// URL, or run a local Bot API server "
            "(NEWSDESK_TELEGRAM_BASE_URL), which may post to http://."
        )
    allowed = "an https:// or http:// URL" if local_api else "an https:// URL"
    return f"NEWSDESK_TELEGRAM_WEBHOOK_URL must be {allowed}."


def settings_problem(exc: ValidationError) -> str:
    """The CLI's wording of invalid settings, and how to get a token when it is missing."""
    missing = {"telegram_token": f"NEWSDESK_TELEGRAM_TOKEN is not set. {HOW_TO}"}
    return "\n".join(settings_problems(exc, missing=missing))


def fail(message: str, code: int) -> int:
    print(f"newsdesk bot: {message}", file=sys.stderr)
    return code


def api_problem(exc: TelegramError, base_url: str, secrets: Sequence[str]) -> tuple[str, int]:
    """What to say (one line, no secret, not the page a proxy answered with) when talking
    to the Bot API failed at start-up, and the exit code."""
    if not_json(exc):  # whatever the HTTP status (PTB makes a 404 page an InvalidToken)
        return (
            f"The Bot API at {base_url} answered with something that is not JSON: is "
            "NEWSDESK_TELEGRAM_BASE_URL right, or is a proxy or a login page in the way?",
            EXIT_RUNTIME,
        )
    if isinstance(exc, InvalidToken):  # its message holds the token: never print it
        return (
            f"Telegram rejected NEWSDESK_TELEGRAM_TOKEN (at {base_url}). "
            "Check it with @BotFather (/token).",
            EXIT_CONFIG,
        )
    what = "Cannot reach" if isinstance(exc, NetworkError) else "Cannot use"
    return (
        f"{what} the Bot API at {base_url}: {redact(describe_api_error(exc), secrets)}",
        EXIT_RUNTIME,
    )


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # no options: everything is in the settings
    try:
        settings = BotSettings()  # type: ignore[call-arg]  # the token comes from the env
    except ValidationError as exc:
        return fail(settings_problem(exc), EXIT_CONFIG)
    token = settings.telegram_token.get_secret_value().strip()
    problem = token_problem(token)
    if problem:
        return fail(problem, EXIT_CONFIG)
    webhook_secret = ""
    if settings.telegram_webhook_url:
        problem = webhook_url_problem(settings.telegram_webhook_url, settings.telegram_base_url)
        if problem:
            return fail(problem, EXIT_CONFIG)
        given = settings.telegram_webhook_secret
        if given is None and settings.database_url is not None:
            return fail(
                "With NEWSDESK_DATABASE_URL (instances sharing one bot), set "
                "NEWSDESK_TELEGRAM_WEBHOOK_SECRET, the same on every instance: each would "
                "otherwise pick its own, and the last one started would be the only one "
                "Telegram's updates are accepted by.",
                EXIT_CONFIG,
            )
        webhook_secret = given.get_secret_value() if given else secrets.token_urlsafe(32)
        if not _WEBHOOK_SECRET.match(webhook_secret):
            return fail(
                "NEWSDESK_TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, '_' and '-' "
                "(1 to 256 characters).",
                EXIT_CONFIG,
            )
    setup_logging(settings.log_level, [token, webhook_secret])
    try:
        plugins = [load_plugin(spec) for spec in settings.bot_plugins]
    except PluginError as exc:
        return fail(str(exc), EXIT_CONFIG)

    from bot.alerts import plugin as alerts
    from bot.app import build_application, webhook_options
    from bot.feeds import plugin as feeds

    if all(p.name != alerts.name for p in plugins):  # topic alerts are on by default
        plugins.insert(0, alerts)
    if all(p.name != feeds.name for p in plugins):  # so is following news sources
        plugins.append(feeds)
    app = build_application(settings, plugins=plugins, announce=True)
    try:
        if settings.telegram_webhook_url:
            app.run_webhook(**webhook_options(settings, webhook_secret))
        else:
            app.run_polling(allowed_updates=Update.ALL_TYPES)
    except TelegramError as exc:
        return fail(*api_problem(exc, settings.telegram_base_url, [token, webhook_secret]))
    except NewsdeskError as exc:
        return fail(error_message(exc), EXIT_RUNTIME)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
