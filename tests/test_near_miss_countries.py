"""The near-miss signal for "right story, wrong country": which countries a question names,
which an article mentions, and the ``absent_country`` feature the reader sees."""

from __future__ import annotations

import numpy as np
import pytest

from index.answer.features import DECISION, FEATURES, candidate_features, decision_features
from index.answer.places import mentioned_countries, named_countries
from index.embedders.hashing import HashingEmbedder
from index.types import Hit, Passage

ARTICLE = """Russian troops in Tajikistan

About 7,000 troops from Russia's 201st Motor Rifle Division are stationed at three \
facilities in Tajikistan.

In October 2012, Moscow and Dushanbe signed a lease agreement until 2042."""


@pytest.mark.parametrize(
    ("question", "countries"),
    [
        ("how many russian troops are stationed in kazakhstan", {"russia", "kazakhstan"}),
        ("who is the tajik defence minister?", {"tajikistan"}),
        ("What did the US say?", {"us"}),
        ("what did the U.S. envoy say", {"us"}),
        ("tell us what happened", set()),  # the pronoun, not the country
        ("how did new zealand beat the united states", {"newzealand", "us"}),
        ("did real madrid win in rome", set()),  # capitals are not read in a question
    ],
)
def test_countries_a_question_names(question: str, countries: set[str]) -> None:
    assert named_countries(question) == countries


def test_an_article_mentions_a_country_by_name_people_or_capital() -> None:
    assert mentioned_countries("Moscow and Dushanbe signed a lease") == {"russia", "tajikistan"}
    assert mentioned_countries("a Kazakh official said") == {"kazakhstan"}
    assert mentioned_countries("the United Kingdom and the UK") == {"uk"}
    assert mentioned_countries("nothing here") == frozenset()


def _scored(question: str):
    title, _, body = ARTICLE.partition("\n\n")
    passage = Passage(
        passage_id=0,
        doc_id="d",
        title=title,
        text=body,
        start=len(title) + 2,
        position=0,
    )
    return candidate_features(
        question,
        [Hit(passage, 1.0, 1)],
        {"d": ARTICLE}.__getitem__,
        query_vector=None,
        sentence_vectors=None,
        lexical=None,
        embed=HashingEmbedder().embed,
    )


@pytest.mark.parametrize(
    ("question", "absent"),
    [
        ("how many russian troops are stationed in kazakhstan", 1.0),
        ("how many russian troops are stationed in tajikistan", 0.0),
        ("how many troops does moscow keep in tajikistan", 0.0),
        ("how many troops are stationed there", 0.0),
    ],
)
def test_absent_country_marks_a_question_whose_country_the_article_lacks(
    question: str, absent: float
) -> None:
    scored = _scored(question)
    column = FEATURES.index("absent_country")
    assert scored.matrix.shape[0] > 0
    assert set(scored.matrix[:, column].tolist()) == {absent}
    _, row = decision_features(scored, np.full(len(scored.candidates), 0.5))
    assert row[DECISION.index("absent_country")] == absent
