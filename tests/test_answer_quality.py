"""The fitted answer model with the real embedding model: what a reader of the bot sees.

The last test builds an index of the whole shared corpus (a few minutes on two cores) and
checks that the shipped model still scores the dev figures its manifest records.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from index.answer import load_model
from index.build import reindex
from index.embedders import load_embedder
from index.engine import Engine
from index.evaluation import evaluate, read_questions
from index.store import load_index
from newsdesk.services import open_engine
from newsdesk.settings import Settings

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def sample_engine(model_data_dir: Path, tmp_path_factory, real_embedder) -> Engine:
    index_dir = tmp_path_factory.mktemp("sample") / "idx"
    settings = Settings(data_dir=model_data_dir, index_dir=index_dir)
    return open_engine(settings, real_embedder, build_if_missing=True)


def test_the_answer_span_is_the_year(sample_engine: Engine) -> None:
    answer = sample_engine.ask("when does the base lease end?")
    assert answer.answered
    assert answer.answer_span is not None
    start, end = answer.answer_span
    assert answer.quote[start:end] == answer.highlight == "2042"
    assert answer.confidence >= sample_engine.extractor.threshold


@pytest.mark.parametrize(
    "question",
    [
        "when does the russian base lease in kyrgyzstan end?",  # right story, wrong country
        "how many russian troops are stationed in kazakhstan",
        "who won the 2005 eurovision song contest",  # nothing on the subject
    ],
)
def test_near_misses_and_offtopic_questions_are_declined(
    sample_engine: Engine, question: str
) -> None:
    answer = sample_engine.ask(question)
    assert not answer.answered, (answer.quote, answer.confidence)
    assert answer.quote == "" and answer.answer_span is None


CORPORA = ("seed", "bbc", "wikinews", "voa")


def test_the_shipped_model_reproduces_its_dev_figures(
    shared: Path, model_data_dir: Path, tmp_path: Path
) -> None:
    bulk = load_embedder("all-MiniLM-L6-v2", model_data_dir, purpose="bulk", workers=2)
    reindex([shared / "corpus" / c for c in CORPORA], tmp_path / "idx", bulk)
    query = load_embedder("all-MiniLM-L6-v2", model_data_dir)
    engine = Engine.create(load_index(tmp_path / "idx"), query)
    model = load_model()
    (hybrid,) = evaluate(engine, read_questions(shared / "eval" / "dev.jsonl"), modes=["hybrid"])
    recorded = model.manifest["figures"]["dev"]
    # Within one question: an index built on a CPU without bf16 can move one borderline
    # case (docs/benchmarks.md); on the CPU kind the model was fitted on they are equal.
    one_answerable = 1.0 / hybrid.answerable + 1e-9
    one_unanswerable = 1.0 / hybrid.unanswerable + 1e-9
    for name, key, tolerance in (
        ("top5", "top5", one_answerable),
        ("quote_has_span", "quote_has_span", one_answerable),
        ("answered", "answered", one_answerable),
        ("declined", "declined", one_unanswerable),
    ):
        assert hybrid.rate(name) == pytest.approx(recorded[key], abs=tolerance), name
