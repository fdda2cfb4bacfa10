"""Unit tests for the bot's small parts, and its startup errors as a user sees them."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.__main__ import EXIT_CONFIG, settings_problem, token_problem
from bot.app import file_url_for
from bot.handlers import parse_more
from bot.limits import RateLimiter
from bot.logs import RedactFilter
from bot.plugins import BotPlugin, PluginError, load_plugin
from bot.services import BotServices
from bot.state import QuestionStore
from newsdesk.settings import BotSettings
from tests.botapi.server import BotApiServer
from tests.conftest import run_cli

# ---- rate limit -------------------------------------------------------------------------


def test_rate_limiter_allows_the_limit_per_window_then_says_how_long_to_wait() -> None:
    now = [100.0]
    limiter = RateLimiter(3, 60, clock=lambda: now[0])
    assert [limiter.hit(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.hit(1) == pytest.approx(60.0)
    assert limiter.hit(2) == 0.0  # per user
    now[0] += 30
    assert limiter.hit(1) == pytest.approx(30.0)
    now[0] += 30.01
    assert limiter.hit(1) == 0.0


# ---- question store ---------------------------------------------------------------------


def test_question_store_survives_reopening_and_expires(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "state.sqlite3"
    store = QuestionStore(path, ttl=3600, clock=lambda: now[0])
    key = store.put("when does the base lease end?", ("tca/base.txt", 120), chat_id=7)
    plain = store.put("who scored?", chat_id=7)
    assert len(f"more:{key}:99".encode()) <= 64  # Telegram's callback_data limit
    assert store.put("when does the base lease end?", ("tca/base.txt", 120), chat_id=7) == key
    store.close()

    store = QuestionStore(path, ttl=3600, clock=lambda: now[0])
    got = store.get(key, chat_id=7)
    assert got is not None and got.question == "when does the base lease end?"
    assert got.quoted == ("tca/base.txt", 120)
    assert store.get(plain, chat_id=7) is not None
    assert store.get(plain, chat_id=7).quoted is None  # type: ignore[union-attr]
    assert store.get("nope", chat_id=7) is None
    now[0] += 3601
    assert store.get(key, chat_id=7) is None
    assert store.prune() == 2


def test_callback_data_parsing() -> None:
    assert parse_more("more:abcDEF123_-x:2") == ("abcDEF123_-x", 2)
    assert parse_more("more:abc:0") == ("abc", 1)
    for bad in ("more:abc", "more:abc:x", "less:abc:1", "", "more:a:b:c"):
        assert parse_more(bad) is None


# ---- hot swap ---------------------------------------------------------------------------


class SlowEngine:
    """Stands in for Engine: answers with its own name, after ``release`` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = threading.Event()
        self.started = threading.Event()

    def ask(self, question: str, k: int = 5, *, prefer_doc_ids: tuple[str, ...] = ()) -> str:
        self.started.set()
        assert self.release.wait(10)
        return self.name


async def test_a_question_in_flight_finishes_on_the_engine_it_started_with(
    tmp_path: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    old, new = SlowEngine("old"), SlowEngine("new")
    services = BotServices(
        settings=None,  # type: ignore[arg-type]
        embedder=None,  # type: ignore[arg-type]
        engine=old,  # type: ignore[arg-type]
        questions=QuestionStore(tmp_path / "s.sqlite3", ttl=60),
        limiter=RateLimiter(1, 1),
        executor=ThreadPoolExecutor(2),
    )
    in_flight = asyncio.create_task(services.ask("q"))
    await asyncio.to_thread(old.started.wait, 5)
    services.engine = new  # what reload_if_changed does
    new.release.set()
    assert await services.ask("q") == "new"
    old.release.set()
    assert await in_flight == "old"
    services.close()


# ---- logging ----------------------------------------------------------------------------


def test_the_token_never_reaches_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    redact = RedactFilter([token])
    logger = logging.getLogger("test.redact")
    caplog.handler.addFilter(redact)
    try:
        try:
            raise RuntimeError(f"POST https://api.telegram.org/bot{token}/getMe failed")
        except RuntimeError:
            logger.exception("request to %s failed", f"https://api.telegram.org/bot{token}/x")
    finally:
        caplog.handler.removeFilter(redact)
    assert token not in caplog.text
    assert "[redacted]" in caplog.text and "Traceback" in caplog.text


# ---- settings and startup ---------------------------------------------------------------


def test_token_checks() -> None:
    assert token_problem("123456789:AAE3xyZ-abc_DEF0123456789abcdefghij") is None
    assert token_problem("123:TEST") is None
    assert "empty" in (token_problem("  ") or "")
    for placeholder in (
        "YOUR_TOKEN_HERE",
        "123456789:replace-me",
        "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
        "123456789:XXXXXXXXXXXXXXXX",
        "<token>",
    ):
        assert "placeholder" in (token_problem(placeholder) or ""), placeholder
    assert "does not look like a bot token" in (token_problem("abc:def ghi") or "")


def test_settings_problem_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSDESK_TELEGRAM_TOKEN", raising=False)
    with pytest.raises(ValidationError) as missing:
        BotSettings(_env_file=None)  # type: ignore[call-arg]
    assert "NEWSDESK_TELEGRAM_TOKEN is not set" in settings_problem(missing.value)
    with pytest.raises(ValidationError) as bad:
        BotSettings(_env_file=None, telegram_token="1:a", bot_rate_limit=0)  # type: ignore[call-arg]
    assert settings_problem(bad.value).startswith("NEWSDESK_BOT_RATE_LIMIT:")


def test_bot_settings_read_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_TELEGRAM_TOKEN", "1:a")
    monkeypatch.setenv("NEWSDESK_ADMIN_IDS", "12, 34")
    monkeypatch.setenv("NEWSDESK_BOT_PLUGINS", "a.b:c")
    settings = BotSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.admin_ids == [12, 34] and settings.bot_plugins == ["a.b:c"]
    assert settings.bot_reload_interval == 30


def test_a_blank_database_url_or_ray_address_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NEWSDESK_DATABASE_URL=`` in a .env keeps the single-machine default (SQLite files,
    the in-memory rate limit), not a half-set shared database."""
    monkeypatch.setenv("NEWSDESK_TELEGRAM_TOKEN", "1:a")
    monkeypatch.setenv("NEWSDESK_DATABASE_URL", "  ")
    monkeypatch.setenv("NEWSDESK_RAY_ADDRESS", "")
    settings = BotSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url is None and settings.ray_address is None


def test_file_url_is_derived_from_the_base_url() -> None:
    assert file_url_for("https://api.telegram.org/bot") == "https://api.telegram.org/file/bot"
    assert file_url_for("http://127.0.0.1:8081/bot/") == "http://127.0.0.1:8081/file/bot"


PLUGIN = BotPlugin("unit")


def make_plugin() -> BotPlugin:
    return BotPlugin("made")


def test_plugins_load_by_name() -> None:
    assert load_plugin("tests.test_bot_units:PLUGIN") is PLUGIN
    assert load_plugin("tests.test_bot_units:make_plugin").name == "made"
    for bad in ("tests.test_bot_units", "no.such.module:x", "tests.test_bot_units:pytest"):
        with pytest.raises(PluginError):
            load_plugin(bad)


def _run_bot(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    base = {"NEWSDESK_TELEGRAM_TOKEN": "", "NEWSDESK_DATA_DIR": str(tmp_path / "data")}
    done = run_cli("bot", env={**base, **env}, cwd=tmp_path, timeout=120)
    return done.returncode, done.stderr.decode()


def test_missing_or_placeholder_token_is_a_clear_startup_error(tmp_path: Path) -> None:
    code, err = _run_bot(tmp_path, {})
    assert code == EXIT_CONFIG
    assert "NEWSDESK_TELEGRAM_TOKEN is empty" in err and "Traceback" not in err
    code, err = _run_bot(tmp_path, {"NEWSDESK_TELEGRAM_TOKEN": "PUT-YOUR-TOKEN-HERE"})
    assert code == EXIT_CONFIG
    assert "placeholder" in err and "@BotFather" in err and "Traceback" not in err


def test_instances_sharing_a_database_must_share_a_webhook_secret(tmp_path: Path) -> None:
    code, err = _run_bot(
        tmp_path,
        {
            "NEWSDESK_TELEGRAM_TOKEN": "123456:Abcdefghijklmnopqrstuvwxyz012345678",
            "NEWSDESK_TELEGRAM_WEBHOOK_URL": "https://bot.example.org/hook",
            "NEWSDESK_DATABASE_URL": "postgresql://newsdesk:pw@127.0.0.1:1/newsdesk",
        },
    )
    assert code == EXIT_CONFIG, err
    assert "set NEWSDESK_TELEGRAM_WEBHOOK_SECRET, the same on every instance" in err
    assert "pw@" not in err and "Traceback" not in err


def test_a_token_telegram_rejects_is_reported_without_printing_it(tmp_path: Path) -> None:
    token = "999999:Rejected0123456789abcdefGHIJ"
    with BotApiServer() as server:  # knows only its own token: answers 401 to this one
        code, err = _run_bot(
            tmp_path,
            {
                "NEWSDESK_TELEGRAM_TOKEN": token,
                "NEWSDESK_TELEGRAM_BASE_URL": server.base_url,
                "NEWSDESK_EMBEDDING_MODEL": "hashing",
                "NEWSDESK_LOG_LEVEL": "DEBUG",
            },
        )
    assert code == EXIT_CONFIG, err
    assert "Telegram rejected NEWSDESK_TELEGRAM_TOKEN" in err
    assert token not in err
    assert "Traceback" not in err


def test_python_dash_m_bot_is_the_same_entry_point(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "NEWSDESK_TELEGRAM_TOKEN": ""}
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG
    assert b"NEWSDESK_TELEGRAM_TOKEN is empty" in done.stderr


def test_env_example_has_a_commented_line_for_every_setting() -> None:
    lines = (Path(__file__).resolve().parents[1] / ".env.example").read_text().splitlines()
    listed = {line[2:].split("=", 1)[0] for line in lines if line.startswith("# NEWSDESK_")}
    fields = {f"NEWSDESK_{name.upper()}" for name in BotSettings.model_fields}
    assert fields - listed == set(), "add these to .env.example"
    assert not [line for line in lines if line.startswith("NEWSDESK_")]  # all commented out


def test_a_limited_asker_is_told_once_per_window_not_per_message() -> None:
    now = [100.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0])
    assert [limiter.check(1).allowed for _ in range(2)] == [True, True]
    refused = [limiter.check(1) for _ in range(5)]
    assert [v.allowed for v in refused] == [False] * 5
    assert [v.notify for v in refused] == [True, False, False, False, False]
    assert limiter.check(2).allowed  # others are not affected
    now[0] += 60.01  # the window has passed: allowed again, and told again next time
    assert [limiter.check(1).allowed for _ in range(2)] == [True, True]
    assert limiter.check(1).notify and not limiter.check(1).notify


def test_question_store_from_before_chat_keys_is_migrated_and_its_keys_expire(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)  # what the store wrote before its schema was numbered
    conn.execute(
        "CREATE TABLE questions (key TEXT PRIMARY KEY, question TEXT NOT NULL, doc_id TEXT, "
        "start INTEGER, created REAL NOT NULL)"
    )
    conn.execute("INSERT INTO questions VALUES ('oldkey', 'who scored?', NULL, NULL, ?)", (1e12,))
    conn.commit()
    conn.close()
    store = QuestionStore(path, ttl=3600)
    assert store.get("oldkey", chat_id=7) is None  # tied to no chat: works in none
    key = store.put("who scored?", chat_id=7)
    assert store.get(key, chat_id=7) is not None
    store.close()


def test_a_malformed_token_is_called_malformed_never_a_placeholder() -> None:
    real = "123456789:AAE3xyZ-abc_DEF0123456789abcdefghij"
    for pasted in (
        f"NEWSDESK_TELEGRAM_TOKEN={real}",  # the .env line pasted into the value
        f"Use this token to access the HTTP API: {real}",  # BotFather's sentence
        "x:y",
        "12345",
    ):
        problem = token_problem(pasted) or ""
        assert "malformed" in problem and "placeholder" not in problem, pasted
        assert real not in problem
