"""Settings, from the environment and ``.env`` (prefix ``NEWSDESK_``), built once in main()."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "sample"


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """The engine's settings: enough to index and answer from the shell."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSDESK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("var")
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
    vector_store: Literal["auto", "flat", "hnsw", "hnsw-refine", "ivf"] = "auto"
    ann_from: int = Field(50_000, ge=1)
    answer_threshold: float | None = None
    max_question_chars: int = Field(500, ge=20, le=4000)
    log_level: str = "WARNING"

    @field_validator("corpus_dirs", mode="before")
    @classmethod
    def _corpus_list(cls, value: object) -> object:
        return _split_list(value)

    @model_validator(mode="after")
    def _default_index_dir(self) -> Settings:
        if self.index_dir is None:
            self.index_dir = self.data_dir / "index"
        return self

    @property
    def index_path(self) -> Path:
        assert self.index_dir is not None
        return self.index_dir


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
