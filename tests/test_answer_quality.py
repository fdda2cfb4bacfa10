"""The fitted answer model with the real embedding model: what a reader of the bot sees.

The last test reads the session's index of the whole shared corpus (``shared_index``) and
checks that the shipped model still scores the dev figures its manifest records.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from index.answer import load_model
from index.engine import Engine
from index.evaluation import evaluate, read_questions
from index.store import load_index
from newsdesk.services import open_engine, run_reindex
from newsdesk.settings import Settings

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def sample_engine(model_data_dir: Path, tmp_path_factory, real_embedder) -> Engine:
    index_dir = tmp_path_factory.mktemp("sample") / "idx"
    settings = Settings(data_dir=model_data_dir, index_dir=index_dir)
    run_reindex(settings, real_embedder)  # only the default index is built implicitly
    return open_engine(settings, real_embedder)


def test_a_confident_answer_leads_with_its_short_answer(sample_engine: Engine) -> None:
    answer = sample_engine.ask("how many russian troops are stationed in tajikistan")
    assert answer.answered
    assert answer.answer_span is not None
    start, end = answer.answer_span
    assert answer.quote[start:end] == answer.highlight == answer.short_answer == "7,000"
    assert answer.confidence >= 0.6


def test_the_lease_answer_marks_the_year(sample_engine: Engine) -> None:
    answer = sample_engine.ask("when does the base lease end?")
    assert answer.answered and "until 2042" in answer.quote
    assert answer.answer_span is not None
    start, end = answer.answer_span
    assert answer.quote[start:end] == answer.highlight == "2042"
    assert answer.confidence >= sample_engine.extractor.threshold


@pytest.mark.parametrize(
    "question",
    [
        "how many russian troops are stationed in kazakhstan",  # right story, wrong country
        "who won the 2005 eurovision song contest",  # nothing on the subject
        "what is the price of a loaf of bread in dushanbe",  # the story is there, the fact not
    ],
)
def test_near_misses_and_offtopic_questions_are_declined(
    sample_engine: Engine, question: str
) -> None:
    answer = sample_engine.ask(question)
    assert not answer.answered, (answer.quote, answer.confidence)
    assert answer.quote == "" and answer.answer_span is None


def test_a_near_miss_on_the_lease_is_declined(sample_engine: Engine) -> None:
    answer = sample_engine.ask("when does the russian base lease in kyrgyzstan end?")
    assert not answer.answered, (answer.quote, answer.confidence)


def test_the_shipped_model_reproduces_its_dev_figures(
    shared: Path, shared_index: Path, real_embedder
) -> None:
    engine = Engine.create(load_index(shared_index), real_embedder)
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
