from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import pytest

from index.answer import AnswerExtractor, answer_type, content_terms
from index.answer.features import FEATURES, candidate_features
from index.embedders.hashing import HashingEmbedder
from index.types import Hit, Passage
from tests.conftest import HeuristicModel

SEED = (
    Path(__file__).resolve().parents[2] / "shared" / "corpus" / "seed" / "tca-shoigu-dushanbe.txt"
)
SEED_DOC = "seed/tca-shoigu-dushanbe.txt"

# A small stand-in with the same shape as the seed article, for when ../shared is absent.
FALLBACK = """Russian defense minister, Tajikistan president discuss military cooperation

Shoigu then held talks with Tajik Defense Minister Sherali Mirzo, during which he said that \
Tajik military forces will take part in the Tsentr (Center) military maneuvers in Russia.

After the talks, Shoigu inspected the Russian military base in Dushanbe.

About 7,000 troops from Russia’s 201st Motor Rifle Division are stationed at three facilities \
that are considered part of the Russian base in Tajikistan.

In October 2012, Moscow and Dushanbe signed a lease agreement under which the military base \
will be deployed in Tajikistan, which borders Afghanistan, until 2042.

Moscow has been expressing concern about an IS spillover into Central Asia for years.
"""


def _article() -> str:
    return SEED.read_text(encoding="utf-8") if SEED.exists() else FALLBACK


def _passages(doc_id: str, text: str, first_id: int = 0) -> list[Passage]:
    """One passage per blank-line paragraph; the first line is the title."""
    title = text.split("\n", 1)[0].strip()
    out = []
    for m in re.finditer(r"[^\n]+(?:\n[^\n]+)*", text):
        if m.start() == 0:
            continue  # the title line
        out.append(
            Passage(
                passage_id=first_id + len(out),
                doc_id=doc_id,
                title=title,
                text=m.group(0),
                start=m.start(),
                position=len(out),
            )
        )
    return out


def _hits(passages: list[Passage]) -> list[Hit]:
    return [Hit(p, 1.0 / (i + 1), i + 1) for i, p in enumerate(passages)]


def _relevant_first(passages: list[Passage], words: tuple[str, ...]) -> list[Passage]:
    """Order passages like a retriever would: those with the question's words first."""
    return sorted(passages, key=lambda p: -sum(w in p.text.lower() for w in words))


@pytest.fixture
def seed() -> tuple[dict[str, str], list[Passage]]:
    text = _article()
    return {SEED_DOC: text}, _passages(SEED_DOC, text)


def make(threshold: float = 0.3, **kw: object) -> AnswerExtractor:
    """An extractor over the fake model (the hand-set score): these tests are about what
    the extractor does with scores, not about the fitted model's choices."""
    return AnswerExtractor(HashingEmbedder(), model=HeuristicModel(), threshold=threshold, **kw)


@pytest.fixture
def extractor() -> AnswerExtractor:
    return make()


def test_when_question_picks_the_year_sentence(seed, extractor) -> None:
    articles, passages = seed
    hits = _hits(_relevant_first(passages, ("base", "lease")))
    answer = extractor.extract("when does the base lease end?", hits, articles.__getitem__)
    assert answer.answered
    assert "until 2042" in answer.quote
    assert answer.highlight == "2042"
    assert answer.answer_span is not None
    start, end = answer.answer_span
    assert answer.quote[start:end] == "2042"
    assert answer.quote in articles[SEED_DOC]
    assert answer.passage is not None and answer.passage.doc_id == SEED_DOC


def test_how_many_question_picks_the_number_sentence(seed, extractor) -> None:
    articles, passages = seed
    hits = _hits(_relevant_first(passages, ("troops", "tajikistan", "russian")))
    answer = extractor.extract(
        "how many russian troops are stationed in tajikistan", hits, articles.__getitem__
    )
    assert answer.answered
    assert "7,000" in answer.quote
    assert answer.highlight == "7,000"


def test_who_question_highlights_a_new_name(seed, extractor) -> None:
    articles, passages = seed
    hits = _hits(_relevant_first(passages, ("defense minister", "mirzo")))
    answer = extractor.extract("who is tajikistans defence minister?", hits, articles.__getitem__)
    assert answer.answered
    assert "Sherali Mirzo" in answer.quote
    assert answer.highlight in answer.quote
    assert "Mirzo" in answer.highlight


def test_quote_and_highlight_are_always_verbatim(seed, extractor) -> None:
    articles, passages = seed
    hits = _hits(passages)
    for question in (
        "when does the base lease end?",
        "how many russian troops are stationed in tajikistan",
        "where did shoigu inspect the base",
        "what did rahmon call the military cooperation",
        "why is moscow worried about central asia",
        "whats the name of the russian division",
    ):
        answer = extractor.extract(question, hits, articles.__getitem__)
        if answer.answered:
            assert answer.quote and answer.quote in articles[SEED_DOC]
            if answer.answer_span is None:
                assert answer.highlight == ""
            else:
                start, end = answer.answer_span
                assert answer.quote[start:end] == answer.highlight != ""
        else:
            assert answer.quote == ""


def test_declines_when_nothing_matches(seed) -> None:
    articles, passages = seed
    extractor = make(threshold=0.5)
    answer = extractor.extract(
        "how much is the monthly subscription for world of warcraft in the uk?",
        _hits(passages),
        articles.__getitem__,
    )
    assert not answer.answered
    assert answer.quote == "" and answer.passage is None
    assert answer.hits and answer.confidence < extractor.threshold


def test_declines_without_hits_or_content_words(seed, extractor) -> None:
    articles, passages = seed
    assert not extractor.extract("when does the base lease end?", [], articles.__getitem__).answered
    assert not extractor.extract("what is it?", _hits(passages), articles.__getitem__).answered


def test_tampered_hit_is_declined(seed, extractor, caplog) -> None:
    articles, passages = seed
    lease = next(p for p in passages if "2042" in p.text)
    forged = replace(lease, text=lease.text.replace("2042", "2099"))
    with caplog.at_level(logging.WARNING, logger="index.answer"):
        answer = extractor.extract(
            "when does the base lease end?", _hits([forged]), articles.__getitem__
        )
    assert not answer.answered
    assert answer.quote == ""
    assert any("does not match" in r.getMessage() for r in caplog.records)


def test_shifted_offset_is_declined(seed, extractor) -> None:
    articles, passages = seed
    lease = next(p for p in passages if "2042" in p.text)
    shifted = replace(lease, start=lease.start + 3)
    answer = extractor.extract(
        "when does the base lease end?", _hits([shifted]), articles.__getitem__
    )
    assert not answer.answered


def test_missing_article_is_declined(seed, extractor) -> None:
    _, passages = seed

    def lookup(doc_id: str) -> str:
        raise KeyError(doc_id)

    answer = extractor.extract("when does the base lease end?", _hits(passages), lookup)
    assert not answer.answered


def test_distractor_passages_from_another_article_do_not_win(seed, extractor) -> None:
    articles, passages = seed
    other = (
        "Stadium costs rise\n\nThe new stadium will cost more than planned, the builder said.\n\n"
        "Work on the roof started in 2003 and the lease of the land runs for decades."
    )
    articles = {**articles, "other.txt": other}
    distractors = _passages("other.txt", other, first_id=100)
    lease = next(p for p in passages if "2042" in p.text)
    hits = _hits([*distractors, lease])
    answer = extractor.extract("when does the base lease end?", hits, articles.__getitem__)
    assert answer.answered
    assert "2042" in answer.quote and answer.passage == lease


def test_candidate_features_are_one_row_per_sentence(seed) -> None:
    articles, passages = seed
    embedder = HashingEmbedder()
    scored = candidate_features(
        "when does the base lease end?",
        _hits(passages),
        articles.__getitem__,
        query_vector=None,
        sentence_vectors=None,
        lexical=None,
        embed=embedder.embed,
        max_passages=3,
    )
    assert scored.candidates
    assert scored.matrix.shape == (len(scored.candidates), len(FEATURES))
    assert embedder.calls == 1  # one embed call for the question and every sentence
    assert {c.hit_index for c in scored.candidates} <= {0, 1, 2}
    for cand, row in zip(scored.candidates, scored.matrix, strict=True):
        assert [cand.features[name] for name in FEATURES] == pytest.approx(row.tolist())
        assert articles[SEED_DOC][cand.start : cand.end] == cand.text


def test_read_passages_are_reranked_by_their_best_sentence(seed, extractor) -> None:
    articles, passages = seed
    lease = next(p for p in passages if "2042" in p.text)
    others = [p for p in passages if p is not lease]
    hits = _hits([*others[:4], lease, *others[4:]])
    answer = extractor.extract("when does the base lease end?", hits, articles.__getitem__)
    assert answer.hits[0].passage == lease
    assert sorted(h.passage.passage_id for h in answer.hits) == sorted(
        h.passage.passage_id for h in hits
    )


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("when does the base lease end?", "date"),
        ("what year did it open", "date"),
        ("whats the deadline for kenteris", "date"),
        ("how many russian troops are stationed in tajikistan", "count"),
        ("how much did lazio pay man utd for jaap stam", "money"),
        ("how much money did japan give the philippines", "money"),
        ("how much did the unexploded ww2 bomb weigh?", "measure"),
        ("how tall is the huge ridge", "measure"),
        ("what was kathy butler's winning time", "measure"),
        ("what is gebrselassie's world indoor two mile record", "measure"),
        ("what was the house vote on the first step act", "number"),
        ("what share of asylum claims came from mexico?", "percent"),
        ("where did multiplex's share price close", "money"),
        ("what city does half-life 2 take place in", "place"),
        ("what kind of cancer did he have?", None),
        ("what was the firefox browser called before", "entity"),
        ("where were the first australian mtv music awards held", "place"),
        ("who is tajikistan's defence minister?", "person"),
        ("in britain's biggest ever bank robbery whose families were taken hostage?", "person"),
        ("why wont bill cosby face charges", "reason"),
        ("which cafe was bombed in marrakech?", "entity"),
        ("what's the name of the nairobi slum", "entity"),
        ("was emilio botin found guilty in the end?", None),
    ],
)
def test_answer_type(question: str, kind: str | None) -> None:
    assert answer_type(question) == kind


def test_content_terms_are_robust_to_chat_typing() -> None:
    assert content_terms("whats the deadline") == ["deadlin"]
    assert content_terms("Why won't they?") == content_terms("why wont they") == []
    assert content_terms("Tajikistan's troops") == content_terms("tajikistans troop")
    assert "7000" in content_terms("about 7,000 troops")
    assert content_terms("the U.S. economy") == content_terms("the us economy")


def test_typos_still_match(seed, extractor) -> None:
    articles, passages = seed
    extractor = make(max_passages=20)
    answer = extractor.extract(
        "how many russian trops are stationd in tajikstan", _hits(passages), articles.__getitem__
    )
    assert answer.answered
    assert "7,000" in answer.quote


def _single(doc_id: str, text: str) -> tuple[dict[str, str], list[Hit]]:
    return {doc_id: text}, _hits(_passages(doc_id, text))


def test_pronoun_led_answer_is_quoted_with_the_sentence_before() -> None:
    text = (
        "Acme shake-up\n\n"
        "Acme chairman John Smith resigned on Monday over the accounts scandal. "
        "He was replaced by Jane Doe, the finance director."
    )
    articles, hits = _single("acme.txt", text)
    extractor = make(threshold=0.2)
    answer = extractor.extract("who replaced acme chairman john smith?", hits, articles.__getitem__)
    assert answer.answered
    assert answer.quote.startswith("Acme chairman John Smith resigned")
    assert answer.quote.endswith("the finance director.")
    assert answer.highlight == "Jane Doe"
    assert answer.quote in text


def test_neighbour_is_never_joined_across_a_paragraph_break() -> None:
    text = (
        "Acme shake-up\n\n"
        "Acme chairman John Smith resigned on Monday over the accounts scandal.\n"
        "He was replaced by Jane Doe, the finance director."
    )
    articles, _ = _single("acme.txt", text)
    passage = Passage(0, "acme.txt", "Acme shake-up", text[15:], 15, 0)
    extractor = make(threshold=0.2)
    answer = extractor.extract(
        "who replaced acme chairman john smith?", _hits([passage]), articles.__getitem__
    )
    assert answer.answered
    assert answer.quote == "He was replaced by Jane Doe, the finance director."


SCAN_SAMPLES = [
    "Sony paid US$2bn, A$4.67 a share and £16.5m, or 160m euros, to 19,800 yen holders.",
    "On 16 November 2004, at midnight on Friday, the deal ran until 2042 (late-1990s talks).",
    "Turnout was 61.4%, up two percent; seven of ten voters chose twice in a row.",
    "He ran 10km in 27 minutes, 3 seconds, every four years since the mid-1980s.",
    "Last week, the 2004/05 season's 3-1 win came at 7.30pm GMT, next month in May.",
    "No numbers here, only Words and Capitals like Tuesday or Jan. and tonight.",
    "",
]


def test_anchored_scans_find_exactly_what_finditer_finds() -> None:
    from index.answer.types import _DATE_RE, _DATE_STARTS, _QUANTITY_RE, _QUANTITY_STARTS, _scan
    from index.sentences import sentence_spans
    from tests.conftest import SHARED

    texts = list(SCAN_SAMPLES)
    bbc = SHARED / "corpus" / "bbc"
    if bbc.is_dir():  # and some real news text, when ../shared is there
        for path in sorted(bbc.rglob("*.txt"))[:40]:
            text = path.read_text(encoding="latin-1")
            texts.extend(text[s:e] for s, e in sentence_spans(text))
    for pattern, starts in ((_DATE_RE, _DATE_STARTS), (_QUANTITY_RE, _QUANTITY_STARTS)):
        for text in texts:
            expected = [(m.span(), m.lastgroup) for m in pattern.finditer(text)]
            assert [(m.span(), m.lastgroup) for m in _scan(pattern, starts, text)] == expected
