"""Fixtures, fakes over mocks: a hashing embedder for unit tests, the real model for a few."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from index.answer.features import DECISION, FEATURES
from index.answer.model import FORMAT_VERSION, AnswerModel, Calibration, Trees, save_model
from index.embedders.hashing import HashingEmbedder

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Real servers started by the tests themselves (each module says how; under CI, or with
# NEWSDESK_REQUIRE_SERVERS=1, a server that cannot be started fails instead of skipping).
pytest_plugins = ["tests.servers.postgres", "tests.servers.ray_cluster"]


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared is not beside the repo")
    return SHARED


class HeuristicModel:
    """A fake answer model: a sentence's score is the first extractor's hand-set score
    (the ``heuristic`` feature), the confidence is the best sentence's score. Tests of what
    the extractor does with scores use it; the fitted model has tests of its own."""

    threshold = 0.3
    manifest: ClassVar[dict] = {}
    word_idf: ClassVar[dict[str, float]] = {}

    def sentence_scores(self, matrix: np.ndarray) -> np.ndarray:
        return np.clip(matrix[:, FEATURES.index("heuristic")], 0.0, 1.0).astype(np.float64)

    def confidence(self, decision: np.ndarray) -> float:
        return float(decision[DECISION.index("best")])


def _staircase(column: int, steps: int = 256) -> Trees:
    """One tree whose leaves give logit(x) for x = the middle of each of ``steps`` equal
    bins of column ``column`` over [0, 1]: a tree-shaped stand-in for "the score is x",
    written as LightGBM dumps its trees and read the way the shipped model's are."""

    def node(lo: int, hi: int) -> dict:
        if hi - lo == 1:
            mid = min(max((lo + 0.5) / steps, 1e-4), 1 - 1e-4)
            return {"leaf_value": float(np.log(mid / (1 - mid)))}
        half = (lo + hi) // 2
        return {
            "split_feature": column,
            "threshold": half / steps,
            "decision_type": "<=",
            "left_child": node(lo, half),
            "right_child": node(half, hi),
        }

    return Trees.from_lightgbm({"tree_info": [{"tree_structure": node(0, steps)}]})


def heuristic_model(threshold: float = 0.56) -> AnswerModel:
    """The fake model as a real model file: sentence score = the first extractor's
    hand-set score, confidence = the best sentence's score (0.56 was its threshold)."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "features": list(FEATURES),
        "decision_features": list(DECISION),
        "fake": "tests/conftest.py heuristic_model",
    }
    return AnswerModel(
        _staircase(FEATURES.index("heuristic")),
        _staircase(DECISION.index("best")),
        Calibration(1.0, 0.0),
        threshold,
        manifest,
    )


@pytest.fixture(scope="session")
def heuristic_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("answer-model") / "heuristic.json"
    save_model(heuristic_model(), path)
    return path


@pytest.fixture(autouse=True)
def answer_with_the_heuristic(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, heuristic_model_file: Path
):
    """Outside the real-model tests, the engine answers with the heuristic model file
    (NEWSDESK_ANSWER_MODEL). The fitted model was trained on the real embedding model's
    features; over the hashing embedder its scores mean nothing, so the tests of the CLI,
    the bot and alerts run on the fake, which behaves like the first extractor did. The
    fitted model has tests of its own (tests/test_answer_model.py, test_answer_quality.py)."""
    if request.node.get_closest_marker("model") is None:
        monkeypatch.setenv("NEWSDESK_ANSWER_MODEL", str(heuristic_model_file))


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder(256)


ArticleWriter = Callable[..., Path]


@pytest.fixture
def write_article(tmp_path: Path) -> ArticleWriter:
    """Write a plain-text article into tmp_path/corpus; returns its path."""

    def write(name: str, title: str, *paragraphs: str, headers: dict[str, str] | None = None):
        path = tmp_path / "corpus" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        head = "".join(f"{k}: {v}\n" for k, v in (headers or {}).items())
        path.write_text(f"{title}\n{head}\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
        return path

    return write


LEASE = (
    "In October 2012, Moscow and Dushanbe signed a lease agreement under which the military "
    "base will be deployed in Tajikistan, which borders Afghanistan, until 2042."
)


@pytest.fixture
def small_corpus(write_article: ArticleWriter, tmp_path: Path) -> Path:
    """Three short articles on different subjects."""
    write_article(
        "tca/base.txt",
        "Russian defense minister visits Dushanbe",
        "DUSHANBE (TCA) — Russian Defense Minister Sergei Shoigu discussed military "
        "cooperation with the President of Tajikistan, Emomali Rahmon, during a one-hour "
        "meeting held behind closed doors in the capital.",
        "About 7,000 troops from Russia's 201st Motor Rifle Division are stationed at three "
        "facilities that are considered part of the Russian base in Tajikistan.",
        LEASE,
        headers={"Source": "The Times of Central Asia", "URL": "https://example.org/tca/1"},
    )
    write_article(
        "sport/match.txt",
        "Rangers win Old Firm derby at Celtic Park",
        "Nacho Novo scored the only goal as Rangers beat Celtic at Celtic Park on Sunday, "
        "moving to the top of the Scottish Premier League table with the win.",
        "The striker fired home in the second half after a mistake in the Celtic defence, "
        "and the visitors held on through a late spell of pressure from the home side.",
        headers={"Source": "BBC"},
    )
    write_article(
        "tech/chip.txt",
        "Cell chip to power PlayStation 3",
        "The Cell processor developed by IBM, Sony and Toshiba could do 16 trillion "
        "calculations a second when used in servers, its makers said on Monday.",
        headers={"Source": "BBC"},
    )
    return tmp_path / "corpus"


async def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something true (returned), or fail after
    ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what or 'condition not met'}")
        await asyncio.sleep(0.05)


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``newsdesk`` in a child process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "newsdesk.cli", *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def model_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the real default model, extracted once per test session."""
    return tmp_path_factory.mktemp("model-data")


SHARED_CORPORA = ("seed", "bbc", "wikinews", "voa")


def data_dir_with_model(model_data_dir: Path, folder: Path) -> Path:
    """A data folder of its own (a re-index leaves its feeds folder there, which would join
    the corpus of every test using ``model_data_dir``) that shares the session's extracted
    model and ONNX export through links."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in ("models", "onnx"):
        (model_data_dir / part).mkdir(parents=True, exist_ok=True)
        (folder / part).symlink_to(model_data_dir / part, target_is_directory=True)
    return folder


@pytest.fixture(scope="session")
def shared_index(model_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the whole shared corpus with the real model, built once per session by
    ``newsdesk reindex`` as an admin would (minutes on two cores); tests only read it."""
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared is not beside the repo")
    home = tmp_path_factory.mktemp("shared-index")
    built = run_cli(
        "reindex", "--quiet", "--index", str(home / "index"),
        env={
            "NEWSDESK_HOME": str(home),
            "NEWSDESK_DATA_DIR": str(data_dir_with_model(model_data_dir, home / "data")),
            "NEWSDESK_CORPUS_DIRS": ",".join(str(SHARED / "corpus" / c) for c in SHARED_CORPORA),
        },
        timeout=3600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr.decode()
    return home / "index"


@pytest.fixture(scope="session")
def real_embedder(model_data_dir: Path):
    from index.embedders import load_embedder

    return load_embedder("all-MiniLM-L6-v2", model_data_dir)


def hashing_pool(tmp_path: Path, dimension: int = 64, *, min_texts: int = 1, **spec: str):
    """A two-worker pool of hashing embedders (fast to spawn); ``spec`` overrides fields
    of the workers' spec (``name``, ``backend``, ``fingerprint``) to make them fail."""
    from index.embedders.pool import PooledEmbedder, WorkerSpec

    local = HashingEmbedder(dimension)
    fields = {"name": f"hashing:{dimension}", "backend": "auto", "fingerprint": local.fingerprint}
    fields.update(spec)
    worker = WorkerSpec(fields["name"], str(tmp_path), fields["backend"], 1, fields["fingerprint"])
    return PooledEmbedder(local, worker, workers=2, min_texts=min_texts)
