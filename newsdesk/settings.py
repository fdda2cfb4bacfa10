"""Settings, from the environment and ``.env`` (prefix ``NEWSDESK_``), built once in main().

Where things live does not depend on the current directory. One folder, the *home*, is
resolved once: ``NEWSDESK_HOME`` when set, else the project root when Newsdesk runs from a
checkout (the folder holding ``pyproject.toml``), else ``$XDG_DATA_HOME/newsdesk``
(``~/.local/share/newsdesk``). From it:

* ``.env`` is read from the home (not from the current directory);
* the data dir defaults to ``<home>/var``;
* a relative path in a setting (environment or ``.env``) is relative to the home.

Paths given as command-line options (``--index``, ``--corpus``) are relative to the
current directory, as with any command; the CLI makes them absolute before they get here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from corpus.feeds import FeedSettings
from corpus.feeds import archive_dir as feeds_archive
from corpus.feeds.settings import DEFAULT_USER_AGENT

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = PROJECT_ROOT / "corpus" / "sample"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def home() -> Path:
    """The folder ``.env``, the default data dir and relative setting paths are taken from."""
    explicit = os.environ.get("NEWSDESK_HOME", "").strip()
    if explicit:
        return Path(explicit).expanduser().absolute()
    if (PROJECT_ROOT / "pyproject.toml").is_file():  # a checkout (editable install)
        return PROJECT_ROOT
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(data_home) if data_home else Path.home() / ".local" / "share") / "newsdesk"


def _from_home(path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else home() / path


def settings_problems(exc: ValidationError, missing: Mapping[str, str] | None = None) -> list[str]:
    """One "NEWSDESK_NAME: what is wrong" per invalid setting, for the CLI and the bot.

    ``missing`` words a required field that is not set (field name -> message)."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        if error["type"] == "missing" and missing and field in missing:
            lines.append(missing[field])
            continue
        name = f"NEWSDESK_{field.upper()}"
        index = error["loc"][1] if len(error["loc"]) > 1 else None
        item = f" (item {index + 1})" if isinstance(index, int) else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}{item}: {message}")
    return lines


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


# The feed round's own defaults, so the NEWSDESK_FEEDS_* fields cannot drift from them.
_FEED = FeedSettings()


class Settings(BaseSettings):
    """The engine's settings: enough to index and answer from the shell."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSDESK_", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("var")  # relative to home(), like every relative path here
    index_dir: Path | None = None
    corpus_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=lambda: [SAMPLE_CORPUS])
    # Largest corpus file read, in MB (a JSON Lines feed counts as one file); larger ones are
    # skipped and reported. Symbolic links may lead out of a corpus folder only when allowed.
    corpus_max_file_mb: float = Field(100, gt=0)
    corpus_follow_links_out: bool = False
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    embedding_backend: Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"] = "auto"
    embedding_threads: int | None = Field(None, ge=1, le=256)
    embedding_workers: int = Field(0, ge=0, le=64)
    # How sentence vectors are made at index time (index/build.py, SENTENCE_METHODS).
    sentence_vectors: Literal["separate", "late"] = "separate"
    vector_store: Literal["auto", "flat", "hnsw", "hnsw-refine", "ivf"] = "auto"
    ann_from: int = Field(50_000, ge=1)
    answer_threshold: float | None = Field(None, ge=0.0, le=1.0)
    answer_model: Path | None = None
    max_question_chars: int = Field(500, ge=20, le=4000)
    log_level: str = "WARNING"
    # Shared state (index/database.py): a postgresql:// URL moves the bot's state (questions,
    # rate limits, subscriptions, the alert outbox and cursor) to PostgreSQL, so several bot
    # instances can share it; unset, it stays in SQLite files in data_dir.
    database_url: SecretStr | None = None
    database_pool_size: int = Field(4, ge=1, le=100)
    # Embedding on a Ray cluster (`newsdesk reindex --ray`): the cluster's address ("auto":
    # the one this machine joined), actors (0: one per CPU the cluster has) and texts per task.
    ray_address: str | None = None
    ray_actors: int = Field(0, ge=0, le=1024)
    ray_batch_size: int = Field(256, ge=1, le=8192)
    # This process's name among several sharing one index folder or database (empty:
    # "<hostname>-<pid>"): alert leases and index readers are recorded under it.
    instance_name: str = ""
    # Following news sources (corpus.feeds): `newsdesk fetch` and the bot's scheduled rounds.
    # The fetched articles (<data_dir>/feeds) join corpus_dirs (see _with_feeds_archive).
    feeds_enabled: bool = True  # the bot's scheduled rounds (when there are sources)
    feeds_interval_minutes: float = Field(_FEED.interval_minutes, gt=0, le=7 * 24 * 60)
    feeds_user_agent: str = ""  # empty: "Newsdesk/<version> (news archive bot; feed reader)"
    feeds_connect_timeout: float = Field(_FEED.connect_timeout, gt=0, le=300)
    feeds_read_timeout: float = Field(_FEED.read_timeout, gt=0, le=600)
    feeds_per_host_delay: float = Field(_FEED.per_host_delay, ge=0, le=60)
    feeds_per_host_concurrency: int = Field(_FEED.per_host_concurrency, ge=1, le=2)
    feeds_retries: int = Field(_FEED.retries, ge=0, le=10)
    feeds_max_items_per_source: int = Field(_FEED.max_items_per_source, ge=1, le=1000)
    feeds_failing_after: int = Field(_FEED.failing_after, ge=1, le=100)

    def __init__(self, **values: Any) -> None:
        # .env comes from home(), resolved when the settings are built, not at import
        values.setdefault("_env_file", home() / ".env")
        super().__init__(**values)

    @field_validator("corpus_dirs", mode="before")
    @classmethod
    def _corpus_list(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("database_url", "ray_address", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """``NEWSDESK_DATABASE_URL=`` (or blanks) means "not set", not an empty URL."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("data_dir", "index_dir", "answer_model", mode="after")
    @classmethod
    def _path_from_home(cls, value: Path | None) -> Path | None:
        return None if value is None else _from_home(value)

    @field_validator("corpus_dirs", mode="after")
    @classmethod
    def _paths_from_home(cls, value: list[Path]) -> list[Path]:
        return [_from_home(path) for path in value]

    @field_validator("log_level", mode="after")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        level = "WARNING" if level == "WARN" else level
        if level not in LOG_LEVELS:
            raise ValueError(f"should be one of {', '.join(LOG_LEVELS)}, not {value!r}")
        return level

    @model_validator(mode="after")
    def _default_index_dir(self) -> Settings:
        if self.index_dir is None:
            self.index_dir = self.data_dir / "index"
        return self

    @model_validator(mode="after")
    def _with_feeds_archive(self) -> Settings:
        """The fetched articles are a corpus folder like the others: every re-index (from
        scratch too) reads them. Added only once the folder exists (a missing corpus folder
        is an error); ``use_feeds_archive`` creates it when a source is followed."""
        if feeds_archive(self.data_dir).is_dir():
            self._add_corpus_dir(feeds_archive(self.data_dir))
        return self

    def _add_corpus_dir(self, folder: Path) -> None:
        def key(path: Path) -> Path:
            return path.expanduser().resolve()

        if all(key(folder) != key(d) for d in self.corpus_dirs):
            self.corpus_dirs.append(folder)

    def use_feeds_archive(self) -> Path:
        """Create the folder fetched articles go to and make re-indexes read it."""
        folder = feeds_archive(self.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self._add_corpus_dir(folder)
        return folder

    def feed_settings(self) -> FeedSettings:
        """What a fetch round may do, from the NEWSDESK_FEEDS_* settings."""
        return FeedSettings(
            interval_minutes=self.feeds_interval_minutes,
            user_agent=self.feeds_user_agent.strip() or DEFAULT_USER_AGENT,
            connect_timeout=self.feeds_connect_timeout,
            read_timeout=self.feeds_read_timeout,
            per_host_delay=self.feeds_per_host_delay,
            per_host_concurrency=self.feeds_per_host_concurrency,
            retries=self.feeds_retries,
            max_items_per_source=self.feeds_max_items_per_source,
            failing_after=self.feeds_failing_after,
        )

    @property
    def index_path(self) -> Path:
        assert self.index_dir is not None
        return self.index_dir

    @property
    def index_is_default(self) -> bool:
        """True when the index is the data dir's own (the only one built without asking)."""
        return self.index_path == self.data_dir / "index"


class BotSettings(Settings):
    """The bot's settings: the engine's plus Telegram's. The token has no default."""

    telegram_token: SecretStr
    telegram_base_url: str = "https://api.telegram.org/bot"
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Webhook mode when a public HTTPS URL is set; long polling otherwise. Telegram sends the
    # secret in the X-Telegram-Bot-Api-Secret-Token header; without one a random one is used.
    telegram_webhook_url: str = ""
    telegram_webhook_secret: SecretStr | None = None
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(8443, ge=1, le=65535)
    # Seconds between checks for a new index version written by `newsdesk reindex`.
    bot_reload_interval: float = Field(30.0, gt=0, le=3600)
    # Questions a user may ask per window (seconds); admins are exempt.
    bot_rate_limit: int = Field(10, ge=1)
    bot_rate_window: float = Field(60.0, gt=0)
    # Threads answering questions off the event loop.
    bot_workers: int = Field(2, ge=1, le=32)
    # Other articles listed under an answer, and passages per "More sources" page.
    bot_sources: int = Field(3, ge=0, le=10)
    bot_page_size: int = Field(3, ge=1, le=10)
    # Days a "More sources" button keeps working (questions kept in data_dir/bot_state.sqlite3).
    bot_question_ttl_days: float = Field(30.0, gt=0)
    # Extra handlers, "module:attribute" naming a bot.plugins.BotPlugin (comma-separated).
    bot_plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("admin_ids", "bot_plugins", mode="before")
    @classmethod
    def _admin_list(cls, value: object) -> object:
        return _split_list(value)
