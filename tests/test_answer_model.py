"""The fitted answer model: its file, its checks, its tree evaluator, and reproducible training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index.answer import training
from index.answer.features import DECISION, FEATURES
from index.answer.model import (
    DEFAULT_MODEL,
    AnswerModelError,
    Trees,
    load_model,
    save_model,
)
from index.build import reindex
from index.engine import Engine
from index.store import load_index
from tests.conftest import HeuristicModel


def test_the_shipped_model_loads_and_matches_this_code() -> None:
    model = load_model()
    assert tuple(model.manifest["features"]) == FEATURES
    assert tuple(model.manifest["decision_features"]) == DECISION
    assert 0.0 < model.threshold < 1.0
    assert len(model.manifest["train_sha256"]) == 64
    assert {"train_cv", "dev"} <= set(model.manifest["figures"])


def _copy_with(tmp_path: Path, edit) -> Path:
    data = json.loads(DEFAULT_MODEL.read_text())
    edit(data)
    path = tmp_path / "reader.json"
    path.write_text(json.dumps(data))
    return path


def test_a_model_with_another_feature_list_is_refused(tmp_path: Path) -> None:
    def drop_one(data: dict) -> None:
        data["manifest"]["features"] = [*data["manifest"]["features"][:-1], "shiny_new_feature"]

    with pytest.raises(AnswerModelError) as err:
        load_model(_copy_with(tmp_path, drop_one))
    message = str(err.value)
    assert "other features" in message and "shiny_new_feature" in message
    assert "scripts/train_answerer.py" in message


def test_a_model_of_another_format_or_damaged_is_refused(tmp_path: Path) -> None:
    def old_format(data: dict) -> None:
        data["manifest"]["format_version"] = 0

    with pytest.raises(AnswerModelError, match="format version 0"):
        load_model(_copy_with(tmp_path, old_format))
    broken = tmp_path / "broken.json"
    broken.write_text('{"manifest": ')
    with pytest.raises(AnswerModelError, match="cannot be read"):
        load_model(broken)
    with pytest.raises(AnswerModelError, match="missing"):
        load_model(tmp_path / "absent.json")


def test_trees_evaluate_exactly_as_lightgbm() -> None:
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(scale=0.3, size=400) > 0).astype(int)
    params = {**training.SENTENCE_PARAMS, "num_iterations": 40, "seed": 1}
    booster = lgb.train({**params, **training._FIXED}, lgb.Dataset(x, label=y))
    trees = Trees.from_lightgbm(booster.dump_model())
    test = rng.normal(size=(200, 6))
    assert trees.raw(test) == pytest.approx(booster.predict(test, raw_score=True), abs=1e-9)
    again = Trees.from_json(json.loads(json.dumps(trees.to_json())))
    assert np.array_equal(again.raw(test), trees.raw(test))


QUESTIONS = [
    ("when does the base lease end?", "2042"),
    ("how many russian troops are stationed in tajikistan", "7,000"),
    ("who is tajikistan's defence minister?", "Sherali Mirzo"),
    ("what did shoigu inspect after the talks", "military base in Dushanbe"),
    ("which division do the troops belong to", "201st Motor Rifle Division"),
    ("when was the lease agreement signed", "October 2012"),
    ("what does tajikistan border", "Afghanistan"),
    ("which maneuvers will tajik forces join", "Tsentr"),
    ("how many cows live on the base", None),
    ("when does the base lease in kyrgyzstan end", None),
    ("who won the 2004 world cup of cricket", None),
    ("what is the price of bread in dushanbe", None),
]


@pytest.fixture
def labelled(small_corpus: Path, tmp_path: Path, fake_embedder) -> list[training.Question]:
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    engine = Engine.create(load_index(tmp_path / "idx"), fake_embedder)
    rows = [{"q": q, "answer": a, "doc": None} for q, a in QUESTIONS]
    return training.collect(engine, rows, max_passages=4)


def test_training_is_deterministic(labelled: list[training.Question], tmp_path: Path) -> None:
    assert any(q.labels.any() for q in labelled)  # the fixture holds real positives
    first, outcomes = training.fit(labelled, folds=3, seed=7)
    second, _ = training.fit(labelled, folds=3, seed=7)
    save_model(first, tmp_path / "a.json")
    save_model(second, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert len(outcomes) == len(labelled)
    loaded = load_model(tmp_path / "a.json")
    for q in labelled:
        assert np.allclose(loaded.sentence_scores(q.matrix), first.sentence_scores(q.matrix))


def test_collect_labels_sentences_by_the_answer_span(labelled: list[training.Question]) -> None:
    lease = labelled[0]
    assert lease.scored is not None
    positives = [c.text for c, y in zip(lease.scored.candidates, lease.labels, strict=True) if y]
    assert positives and all("2042" in text for text in positives)
    assert not labelled[-1].labels.any()  # unanswerable: no positive candidate


def test_rates_count_wrong_quotes_and_answers_to_the_unanswerable() -> None:
    def o(answerable: bool, confidence: float, right: bool, kind: str = "") -> training.Outcome:
        return training.Outcome(answerable, kind, "", "", confidence, right, *[right] * 3, right)

    outcomes = [
        o(True, 0.9, True),
        o(True, 0.8, False),
        o(True, 0.2, True),
        o(False, 0.7, False, "unanswerable-swap"),
        o(False, 0.1, False, "unanswerable-swap"),
    ]
    r = training.rates(outcomes, 0.5)
    assert r["answered"] == pytest.approx(2 / 3)
    assert r["quote_has_span"] == pytest.approx(1 / 3)
    assert r["declined"] == r["swap_declined"] == pytest.approx(0.5)
    assert r["precision"] == pytest.approx(1 / 3)  # one right among three given


def test_heuristic_fake_speaks_the_models_interface() -> None:
    fake = HeuristicModel()
    matrix = np.zeros((2, len(FEATURES)), dtype=np.float32)
    matrix[1, FEATURES.index("heuristic")] = 0.7
    assert fake.sentence_scores(matrix).tolist() == pytest.approx([0.0, 0.7])
