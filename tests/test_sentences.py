from __future__ import annotations

import pytest

from index.sentences import sentence_spans, split_sentences


def test_spans_slice_sentences_without_outer_whitespace() -> None:
    text = "  First one here.   Second one there!  \n\n  Third?  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["First one here.", "Second one there!", "Third?"]
    for s, e in spans:
        assert text[s:e] == text[s:e].strip()


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith met Mrs. Jones and Dr. Brown at St. Paul's on Tuesday.",
        "The U.S. Army and the U.K. government asked the U.N. for help.",
        "Gen. Lee and Lt. Dan were there, e.g. at the base, i.e. in the field.",
        "It was Chelsea vs. Arsenal at home.",
        "He was born on Jan. 5 and joined in Feb. 2004 as No. 10 in the list.",
        "Acme Inc. and Widgets Ltd. and Smith & Co. were named.",
        "Pens, paper, etc. were bought by the office.",
        "J. K. Rowling wrote the books.",
        "Shares closed at A$4.67 after the news.",
        "Lazio paid £16.5m for him in 2001.",
        "The record stands at eight minutes, 04.69 seconds in total.",
        "He paused... and then he went on.",
        '"Why not?" he asked the crowd.',
    ],
)
def test_does_not_split_inside_a_sentence(text: str) -> None:
    assert split_sentences(text) == [text]


def test_splits_after_closing_quotes_keeping_the_quote() -> None:
    text = 'He said: "We will win." The crowd cheered. She said “no.” Then she left.'
    assert split_sentences(text) == [
        'He said: "We will win."',
        "The crowd cheered.",
        "She said “no.”",
        "Then she left.",
    ]


def test_splits_on_question_and_exclamation_marks() -> None:
    assert split_sentences("Is it over? Yes! It is.") == ["Is it over?", "Yes!", "It is."]


def test_splits_at_paragraph_breaks_even_without_a_full_stop() -> None:
    text = "A heading without a stop\n\nThe body starts here. It goes on.\nA new line"
    assert split_sentences(text) == [
        "A heading without a stop",
        "The body starts here.",
        "It goes on.",
        "A new line",
    ]


def test_abbreviation_at_the_end_of_a_sentence_before_a_new_one() -> None:
    assert split_sentences("He moved to the U.S. The next day he started work.") == [
        "He moved to the U.S.",
        "The next day he started work.",
    ]
    assert split_sentences("The firm is Acme Inc. It was founded in 1990.") == [
        "The firm is Acme Inc.",
        "It was founded in 1990.",
    ]


def test_numbers_end_sentences() -> None:
    text = "The base will stay until 2042. Visiting Tajikistan, he spoke."
    assert split_sentences(text) == [
        "The base will stay until 2042.",
        "Visiting Tajikistan, he spoke.",
    ]


def test_seed_article_sentences() -> None:
    text = (
        "About 7,000 troops from Russia’s 201st Motor Rifle Division are stationed at three "
        "facilities that are considered part of the Russian base in Tajikistan.\n\nIn October "
        "2012, Moscow and Dushanbe signed a lease agreement under which the military base will "
        "be deployed in Tajikistan, which borders Afghanistan, until 2042."
    )
    sentences = split_sentences(text)
    assert len(sentences) == 2
    assert sentences[1].endswith("until 2042.")


def test_empty_and_blank() -> None:
    assert sentence_spans("") == []
    assert sentence_spans(" \n\n \t") == []
