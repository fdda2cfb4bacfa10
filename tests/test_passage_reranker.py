"""The passage reranker: its features, its training, its file, and the retriever's use of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index.answer import training
from index.answer.model import AnswerModelError, load_model, save_model
from index.answer.passages import PASSAGE_FEATURES, PassageRanker
from index.build import reindex
from index.engine import Engine
from index.retriever import Retriever
from index.store import LoadedIndex, load_index

ROWS = [
    {"q": "when does the base lease end?", "answer": "2042", "doc": "tca/base.txt"},
    {"q": "how many russian troops are stationed", "answer": "7,000", "doc": "tca/base.txt"},
    {"q": "who scored the only goal at celtic park", "answer": "Nacho Novo", "doc": "sport"},
    {"q": "who made the cell processor", "answer": "IBM", "doc": "tech/chip.txt"},
    {"q": "how fast is the cell chip", "answer": "16 trillion", "doc": "tech/chip.txt"},
    {"q": "who won the 2004 world cup of cricket", "answer": None, "doc": None},
]


@pytest.fixture
def index(small_corpus: Path, tmp_path: Path, fake_embedder) -> LoadedIndex:
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    return load_index(tmp_path / "idx")


@pytest.fixture
def ranked(index: LoadedIndex, fake_embedder) -> list[training.RankedQuestion]:
    return training.collect_passages(Engine.create(index, fake_embedder), ROWS)


def column(name: str) -> int:
    return PASSAGE_FEATURES.index(name)


def test_each_fused_candidate_gets_a_row_and_a_label(
    ranked: list[training.RankedQuestion],
) -> None:
    lease = ranked[0]
    assert lease.matrix.shape == (len(lease.labels), len(PASSAGE_FEATURES))
    assert lease.matrix[:, column("fused_rank")].tolist() == list(range(1, len(lease.labels) + 1))
    assert lease.labels.sum() == 1  # one passage holds "2042"
    holder = int(np.argmax(lease.labels))
    # It holds more of the question's words ("base", "lease"; no "end") than any other.
    coverage = lease.matrix[:, column("p_idf_cov")]
    assert 0 < coverage[holder] == coverage.max() < 1
    assert lease.matrix[holder, column("p_absent_idf")] > 0  # "end" is missing
    assert lease.matrix[holder, column("s_best")] > 0
    assert ranked[-1].answerable is False and not ranked[-1].labels.any()


def test_training_the_reranker_is_deterministic(ranked: list[training.RankedQuestion]) -> None:
    first = training.fit_passages(ranked, seed=3).to_json()
    assert json.dumps(first) == json.dumps(training.fit_passages(ranked, seed=3).to_json())
    folds = training.fold_rankers(ranked, folds=2, seed=3)
    assert len(folds) == len(ranked)
    figures = training.rank_figures(ranked, folds)
    assert set(figures) == {"fused_top1", "fused_top5", "top1", "top5"}
    assert figures["fused_top5"] == 1.0  # five answerable questions, three articles
    unranked = training.rank_figures(ranked, [None] * len(ranked))
    assert (unranked["top1"], unranked["top5"]) == (unranked["fused_top1"], 1.0)


class ReverseFused:
    """Scores a candidate by its fused rank: the fused order, reversed."""

    def raw(self, x: np.ndarray) -> np.ndarray:
        return x[:, column("fused_rank")].astype(np.float64)


def test_the_retriever_returns_the_candidates_in_the_rerankers_order(
    index: LoadedIndex, fake_embedder
) -> None:
    question = "when does the base lease end?"
    fused = Retriever(index, fake_embedder).search(question, k=50)
    reranked = Retriever(index, fake_embedder, reranker=PassageRanker(ReverseFused()))
    hits = reranked.search(question, k=2)
    assert [h.passage.passage_id for h in hits] == [
        h.passage.passage_id for h in reversed(fused[-2:])
    ]
    assert [h.rank for h in hits] == [1, 2]
    assert hits[0].score == fused[-1].score  # the fused score is kept
    # Other modes are never reranked.
    assert reranked.search(question, k=3, mode="bm25") == Retriever(index, fake_embedder).search(
        question, k=3, mode="bm25"
    )


def test_a_model_without_a_reranker_keeps_the_fused_order(
    index: LoadedIndex, fake_embedder, heuristic_model_file: Path
) -> None:
    engine = Engine.create(index, fake_embedder, model_path=heuristic_model_file)
    assert engine.extractor.model.ranker() is None
    question = "how many russian troops are stationed"
    assert engine.search(question) == Retriever(index, fake_embedder).search(question)


def model_with_reranker(ranked: list[training.RankedQuestion], path: Path) -> Path:
    """The heuristic fake model file, carrying a reranker fitted on ``ranked``."""
    from tests.conftest import heuristic_model

    model = heuristic_model()
    with_ranker = type(model)(
        model.sentence,
        model.answerable,
        model.calibration,
        model.threshold,
        {**model.manifest, "passage_features": list(PASSAGE_FEATURES)},
        model.word_idf,
        training.fit_passages(ranked, seed=0),
    )
    save_model(with_ranker, path)
    return path


def test_a_saved_reranker_scores_as_the_fitted_one(
    ranked: list[training.RankedQuestion], tmp_path: Path
) -> None:
    trees = training.fit_passages(ranked, seed=0)
    loaded = load_model(model_with_reranker(ranked, tmp_path / "m.json"))
    assert loaded.passages is not None and loaded.ranker() is not None
    for q in ranked:
        assert np.array_equal(loaded.passages.raw(q.matrix), trees.raw(q.matrix))


def test_an_engine_reads_in_its_models_reranked_order(
    ranked: list[training.RankedQuestion], index: LoadedIndex, fake_embedder, tmp_path: Path
) -> None:
    path = model_with_reranker(ranked, tmp_path / "m.json")
    engine = Engine.create(index, fake_embedder, model_path=path)
    question = "who made the cell processor"
    ranker = load_model(path).ranker()
    assert ranker is not None
    vector = fake_embedder.embed([question])[0]
    fused = Retriever(index, fake_embedder).search(question, k=50, query_vector=vector)
    expected = ranker.rerank(question, fused, query_vector=vector, index=index)
    assert engine.search(question, k=3) == expected[:3]


def test_the_shipped_model_has_no_reranker() -> None:
    """Measured and left opt-in (README, "Quality"): the shipped reader reads the fused
    order it was trained on."""
    assert load_model().ranker() is None


def test_a_model_with_other_passage_features_is_refused(
    ranked: list[training.RankedQuestion], tmp_path: Path
) -> None:
    path = model_with_reranker(ranked, tmp_path / "reader.json")
    data = json.loads(path.read_text())
    data["manifest"]["passage_features"] = ["fused", "shiny_new_feature"]
    path.write_text(json.dumps(data))
    with pytest.raises(AnswerModelError) as err:
        load_model(path)
    message = str(err.value)
    assert "passage features" in message and "shiny_new_feature" in message
    assert "scripts/train_answerer.py" in message


def test_word_presence_comes_from_the_bm25_postings(index: LoadedIndex) -> None:
    from index.lexical import tokenize

    everyone = np.arange(len(index.passages))
    for term in ("leas", "celtic", "processor", "nowhere-at-all"):
        truth = [term in tokenize(p.embedding_text()) for p in index.passages]
        assert index.lexical.holds(term, everyone).tolist() == truth
    assert index.lexical.holds("leas", np.zeros(0, np.int64)).tolist() == []
