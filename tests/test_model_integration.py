"""The real model, end to end: checksum verification and answering from the shipped corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from index.embedders.models import DEFAULT_MODEL_SHA256, default_model_dir, verify_weights
from index.errors import ModelError
from newsdesk.services import open_engine, run_reindex
from newsdesk.settings import SAMPLE_CORPUS, Settings
from tests.conftest import run_cli

pytestmark = pytest.mark.model


def test_default_model_is_extracted_and_verified(model_data_dir: Path, real_embedder):
    model_dir = default_model_dir(model_data_dir)
    assert (model_dir / "model.safetensors").is_file()
    assert real_embedder.fingerprint == DEFAULT_MODEL_SHA256
    assert real_embedder.dimension == 384


def test_tampered_weights_are_refused(model_data_dir: Path, tmp_path: Path, real_embedder):
    copy = tmp_path / "model"
    shutil.copytree(default_model_dir(model_data_dir), copy)
    (copy / ".newsdesk-verified.json").unlink(missing_ok=True)
    with (copy / "model.safetensors").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match="Checksum mismatch"):
        verify_weights(copy, DEFAULT_MODEL_SHA256)


def test_sample_corpus_answers_the_lease_question(model_data_dir: Path, tmp_path, real_embedder):
    settings = Settings(data_dir=model_data_dir, index_dir=tmp_path / "idx")
    assert settings.corpus_dirs == [SAMPLE_CORPUS]
    run_reindex(settings, real_embedder)  # only the default index is built implicitly
    engine = open_engine(settings, real_embedder)
    answer = engine.ask("when does the base lease end?")
    assert answer.answered
    assert "2042" in answer.quote and "lease agreement" in answer.quote
    assert answer.passage is not None
    assert answer.passage.source == "The Times of Central Asia"
    assert answer.quote in engine.index.article_text(answer.passage.doc_id)


def test_cli_answers_from_a_fresh_checkout_layout(model_data_dir: Path, tmp_path: Path):
    # the data dir's own index is the one built on first use, as in a fresh checkout
    env = {"NEWSDESK_DATA_DIR": str(model_data_dir)}
    result = run_cli("ask", "--json", "when does the base lease end?", env=env)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert data["answered"] and "2042" in data["quote"]
    assert data["source"] == "The Times of Central Asia"
