"""A chosen instance name is unique among running bot instances (it owns alert leases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.services import BotServices, InstanceNameTakenError
from index.embedders.hashing import HashingEmbedder
from newsdesk.settings import BotSettings


def open_services(
    database_backend: str, request: pytest.FixtureRequest, data: Path, corpus: Path, name: str
) -> BotServices:
    url = request.getfixturevalue("pg_database_url") if database_backend == "postgres" else None
    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_token="1:a",
        data_dir=data,
        corpus_dirs=[corpus],
        database_url=url,
        instance_name=name,
    )
    return BotServices.open(settings, HashingEmbedder(64))


def test_a_second_instance_under_a_taken_name_is_refused_until_the_first_stops(
    database_backend: str, request: pytest.FixtureRequest, tmp_path: Path, small_corpus: Path
):
    data = tmp_path / "data"
    first = open_services(database_backend, request, data, small_corpus, "bot-1")
    try:
        with pytest.raises(InstanceNameTakenError, match="'bot-1'"):
            open_services(database_backend, request, data, small_corpus, "bot-1")
        other = open_services(database_backend, request, data, small_corpus, "bot-2")
        other.close()
    finally:
        first.close()
    again = open_services(database_backend, request, data, small_corpus, "bot-1")
    again.close()
