from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import pytest

from index.answer import AnswerExtractor, answer_type, content_terms
from index.embedders.hashing import HashingEmbedder
from index.types import Hit, Passage

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


@pytest.fixture
def extractor() -> AnswerExtractor:
    return AnswerExtractor(HashingEmbedder(), threshold=0.3)


def test_when_question_picks_the_year_sentence(seed, extractor) -> None:
    articles, passages = seed
    hits = _hits(_relevant_first(passages, ("base", "lease")))
    answer = extractor.extract("when does the base lease end?", hits, articles.__getitem__)
    assert answer.answered
    assert "until 2042" in answer.quote
    assert answer.highlight == "2042"
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
            assert answer.highlight in answer.quote
        else:
            assert answer.quote == ""


def test_declines_when_nothing_matches(seed) -> None:
    articles, passages = seed
    extractor = AnswerExtractor(HashingEmbedder())
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


def test_score_sentences_exposes_features(seed, extractor) -> None:
    articles, passages = seed
    embedder = HashingEmbedder()
    extractor = AnswerExtractor(embedder, max_passages=3)
    candidates = extractor.score_sentences(
        "when does the base lease end?", _hits(passages), articles.__getitem__
    )
    assert candidates
    assert embedder.calls == 1  # one embed call for the question and every sentence
    assert {c.hit_index for c in candidates} <= {0, 1, 2}
    for cand in candidates:
        assert {"dense", "lex", "lex_ctx", "focus", "type", "near", "rank"} <= set(cand.features)
        assert 0.0 <= cand.score <= 1.0
        assert articles[SEED_DOC][cand.start : cand.end] == cand.text


def test_candidate_cap(seed) -> None:
    articles, passages = seed
    extractor = AnswerExtractor(HashingEmbedder(), max_passages=50, max_candidates=4)
    candidates = extractor.score_sentences(
        "when does the base lease end?", _hits(passages), articles.__getitem__
    )
    assert len(candidates) == 4
    assert any("2042" in c.text for c in candidates)


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
    extractor = AnswerExtractor(HashingEmbedder(), threshold=0.3, max_passages=20)
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
    extractor = AnswerExtractor(HashingEmbedder(), threshold=0.2)
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
    extractor = AnswerExtractor(HashingEmbedder(), threshold=0.2)
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
    from index.answer import _DATE_RE, _DATE_STARTS, _QUANTITY_RE, _QUANTITY_STARTS, _scan
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


@pytest.mark.parametrize(
    "question",
    [
        "when does the base lease end?",
        "how many russian troops are stationed in tajikistan",
        "who is tajikistans defence minister?",
        "where did shoigu go after the talks",
        "why is moscow worried about central asia",
        "what is the base called",
        "tell me about the military maneuvers",
    ],
)
def test_pruned_scoring_picks_what_full_scoring_picks(seed, question) -> None:
    """extract() skips the pattern scans of candidates that cannot win: same best, same score."""
    articles, passages = seed
    extractor = AnswerExtractor(HashingEmbedder(), threshold=0.0)
    hits = _hits(passages)
    full = extractor.score_sentences(question, hits, articles.__getitem__)
    pruned = extractor.score_sentences(question, hits, articles.__getitem__, only_best=True)

    def best(cands):
        eligible = [c for c in cands if c.eligible]
        top = max(eligible, key=lambda c: (c.score, -c.hit_index, -c.start))
        return top.start, top.end, top.score, [m.text for m in top.type_spans]

    assert best(pruned) == best(full)
    answer = extractor.extract(question, hits, articles.__getitem__)
    assert answer.answered and answer.confidence == round(best(full)[2], 4)
