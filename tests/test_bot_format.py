"""Unit tests for bot.format: escaping, layout and Telegram's 4,096-character limit.

Every message is checked with the local Bot API server's HTML parser (the same rules
Telegram applies, stricter about '&'), so "it parses" means Telegram would accept it.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bot import format as fmt
from index.types import Answer, Hit, Passage
from tests.botapi.server import parse_html

LIMIT = fmt.TELEGRAM_LIMIT


def parse(text: str) -> tuple[str, list[dict]]:
    """Visible text and entities, as Telegram would see them; fails on bad HTML."""
    assert fmt.tg_len(text) <= LIMIT, f"{fmt.tg_len(text)} > {LIMIT}"
    return parse_html(text)


def passage(n: int = 0, **kw: object) -> Passage:
    values: dict = {
        "passage_id": n,
        "doc_id": f"doc{n}.txt",
        "title": f"Title {n}",
        "text": f"Passage text number {n}.",
        "start": 0,
        "position": 0,
        "source": "BBC",
        "url": "",
        "date": "",
    }
    values.update(kw)
    return Passage(**values)


def hits(*passages: Passage) -> list[Hit]:
    return [Hit(p, 1.0 / (i + 1), i + 1) for i, p in enumerate(passages)]


LEASE = (
    "In October 2012, Moscow and Dushanbe signed a lease agreement under which the military "
    "base will be deployed in Tajikistan, which borders Afghanistan, until 2042."
)


def answered(quote: str = LEASE, highlight: str = "2042", **kw: object) -> Answer:
    best = passage(
        0,
        title="Russian defense minister visits Dushanbe",
        source="The Times of Central Asia",
        url="https://example.org/tca/1",
        date="2019-05-30T10:00:00+00:00",
        text=quote,
    )
    others = kw.pop("others", [passage(1), passage(2), passage(3), passage(4)])
    return Answer(
        question="when does the base lease end?",
        answered=True,
        quote=quote,
        highlight=highlight,
        passage=best,
        confidence=0.7,
        hits=hits(best, *others),  # type: ignore[arg-type]
    )


# ---- answers ----------------------------------------------------------------------------


def test_answer_has_quote_in_blockquote_with_bold_highlight_and_linked_source() -> None:
    text, entities = parse(fmt.format_answer(answered()))
    assert LEASE in text
    kinds = {e["type"]: e for e in entities}
    quote = kinds["blockquote"]
    assert text[quote["offset"] : quote["offset"] + quote["length"]] == LEASE
    bold = [e for e in entities if e["type"] == "bold"]
    assert any(text[e["offset"] : e["offset"] + e["length"]] == "2042" for e in bold)
    link = kinds["text_link"]
    assert link["url"] == "https://example.org/tca/1"
    assert text[link["offset"] : link["offset"] + link["length"]].startswith("Russian defense")
    assert "The Times of Central Asia · 2019-05-30" in text


def test_a_confident_short_answer_leads_and_the_bold_sits_on_the_answer_span() -> None:
    quote = "In 2042 terms, the base lease agreed in 2012 runs until 2042."
    span = (quote.rindex("2042"), len(quote) - 1)
    ans = replace(answered(quote), answer_span=span, short_answer="2042")
    text, entities = parse(fmt.format_answer(ans))
    assert text.startswith("2042\n")
    bold = [(e["offset"], e["length"]) for e in entities if e["type"] == "bold"]
    assert (0, 4) in bold  # the first line
    block = next(e for e in entities if e["type"] == "blockquote")
    assert (block["offset"] + span[0], 4) in bold  # the answer, not the first "2042"
    assert (block["offset"] + quote.index("2042"), 4) not in bold


def test_no_short_answer_line_without_one() -> None:
    text, _ = parse(fmt.format_answer(answered()))
    assert text.startswith(LEASE)


def test_answer_lists_next_sources_briefly_without_repeating_the_answer_article() -> None:
    ans = answered(others=[passage(0), passage(1), passage(2), passage(3), passage(4)])
    text, _ = parse(fmt.format_answer(ans, sources=3))
    assert "Also in the archive" in text
    assert [t for t in ("Title 1", "Title 2", "Title 3", "Title 4") if t in text] == [
        "Title 1",
        "Title 2",
        "Title 3",
    ]
    assert text.count("Russian defense minister") == 1


def _with_url(ans: Answer, url: str) -> Answer:
    assert ans.passage is not None
    return replace(ans, passage=replace(ans.passage, url=url))


def test_answer_without_highlight_or_url_has_no_bold_quote_and_plain_title() -> None:
    text, entities = parse(fmt.format_answer(_with_url(answered(highlight=""), "")))
    assert LEASE in text
    assert not any(e["type"] == "text_link" for e in entities)
    quote = next(e for e in entities if e["type"] == "blockquote")
    end = quote["offset"] + quote["length"]
    assert not [e for e in entities if e["type"] == "bold" and quote["offset"] <= e["offset"] < end]


def test_everything_from_the_corpus_is_escaped() -> None:
    nasty = '<script>alert("x")</script> & <b>bold</b> &amp; <a href="y">'
    best = passage(0, title=nasty, source=nasty, date=nasty, text=nasty)
    ans = Answer(
        question=nasty,
        answered=True,
        quote=nasty,
        highlight="& <b>bold",
        passage=best,
        hits=hits(best, passage(1, title=nasty, source=nasty)),
    )
    text, entities = parse(fmt.format_answer(ans))
    assert nasty in text  # shown literally
    assert {e["type"] for e in entities} <= {"blockquote", "bold"}


def test_unsafe_urls_are_not_linked() -> None:
    for url in (
        "javascript:alert(1)",
        "ftp://x.org/a",
        'https://x.org/"><b>',
        "https://" + "a" * 3000,
    ):
        text, entities = parse(fmt.format_answer(_with_url(answered(), url)))
        assert not any(e["type"] == "text_link" for e in entities), url
        assert "Russian defense minister" in text


def test_declined_says_so_plainly_and_offers_closest_articles() -> None:
    question = "<b>What</b> is the capital of Mars & Venus?"
    ans = Answer(question=question, answered=False, hits=hits(passage(1), passage(1), passage(2)))
    text, _ = parse(fmt.format_answer(ans))
    assert text.startswith(
        "I couldn't find the answer to “<b>What</b> is the capital of Mars & Venus?”"
    )
    assert "Closest articles" in text
    assert text.count("Title 1") == 1 and "Title 2" in text


def test_declined_with_nothing_related() -> None:
    text, _ = parse(fmt.format_answer(Answer(question="x y z?", answered=False)))
    assert "couldn't find" in text and "Nothing in it looks related" in text


@pytest.mark.parametrize("char", ["a", "&", "<", "é", "😀"])
def test_huge_inputs_stay_under_the_limit_and_parse(char: str) -> None:
    huge = (char * 7 + " ") * 20_000
    highlight = huge[70_000:70_100]
    many = [
        passage(
            i,
            title=huge[:5000],
            source=huge[:3000],
            date=huge[:500],
            url="https://x.org/" + "q" * 900,
        )
        for i in range(1, 30)
    ]
    best = passage(0, title=huge, source=huge, date=huge, text=huge, url="https://x.org/&a=1")
    for ans in (
        Answer(
            question=huge,
            answered=True,
            quote=huge,
            highlight=highlight,
            passage=best,
            hits=hits(best, *many),
        ),
        Answer(
            question=huge,
            answered=True,
            quote=huge,
            highlight="",
            passage=best,
            hits=hits(best, *many),
        ),
        Answer(question=huge, answered=False, hits=hits(*many)),
    ):
        message = fmt.format_answer(ans, sources=10)
        text, entities = parse(message)
        assert text
        if ans.answered:
            assert any(e["type"] == "blockquote" for e in entities)
            if ans.highlight:
                assert highlight.strip() in text


# ---- more sources -----------------------------------------------------------------------


def test_more_sources_pages_skip_the_quoted_passage() -> None:
    ps = [passage(i, text=f"Snippet {i} " + "word " * 200) for i in range(8)]
    first = fmt.format_more_sources(hits(*ps), page=1, page_size=3, skip=("doc0.txt", 0))
    text, entities = parse(first.text)
    assert first.has_more
    assert "Title 0" not in text and "Title 1" in text and "Title 3" in text
    assert "Title 4" not in text
    assert "More sources (1–3)" in text
    assert sum(e["type"] == "blockquote" for e in entities) == 3
    last = fmt.format_more_sources(hits(*ps), page=3, page_size=3, skip=("doc0.txt", 0))
    text, _ = parse(last.text)
    assert not last.has_more and "Title 7" in text
    empty = fmt.format_more_sources(hits(*ps), page=4, page_size=3, skip=("doc0.txt", 0))
    assert empty.text == fmt.NO_MORE and not empty.has_more


def test_more_sources_with_huge_passages_fit() -> None:
    ps = [
        passage(i, title="&" * 5000, text="<" * 50_000, url="https://x.org/" + "&" * 900)
        for i in range(10)
    ]
    page = fmt.format_more_sources(hits(*ps), page=1, page_size=10)
    parse(page.text)


# ---- splitting --------------------------------------------------------------------------


def _visible_words(html_text: str) -> list[str]:
    return parse_html(html_text)[0].split()


def test_split_prefers_paragraph_boundaries() -> None:
    para = ("word " * 600).strip()  # 2,999 characters
    text = f"<b>One</b> {para}\n\n<i>Two</i> {para}"
    chunks = fmt.split_html(text)
    assert len(chunks) == 2
    assert chunks[0].startswith("<b>One</b>") and chunks[1].startswith("<i>Two</i>")


def test_split_reopens_tags_across_a_cut() -> None:
    text = (
        '<blockquote><a href="https://x.org/?a=1&amp;b=2">'
        + ("long line " * 1000)
        + "</a></blockquote>"
    )
    chunks = fmt.split_html(text, 1000)
    assert len(chunks) > 1
    for chunk in chunks:
        _, entities = parse_html(chunk)
        assert len(chunk) <= 1000
        assert {e["type"] for e in entities} == {"blockquote", "text_link"}
        assert all(
            e.get("url", "https://x.org/?a=1&b=2") == "https://x.org/?a=1&b=2" for e in entities
        )
    assert sum(len(_visible_words(c)) for c in chunks) == 2000


def test_split_random_documents_never_break_tags_or_entities() -> None:
    rng = random.Random(7)
    pieces = ["word", "&amp;", "&lt;", "😀", "é", "\n", "\n\n", " ", "x" * 300]
    for _ in range(25):
        parts = []
        for _ in range(rng.randint(20, 150)):
            tag = rng.choice(["", "b", "i", "blockquote", "code", "a"])
            inner = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 15)))
            if tag == "a":
                parts.append(f'<a href="https://example.org/{rng.randint(0, 99)}">{inner}</a>')
            elif tag:
                parts.append(f"<{tag}>{inner}</{tag}>")
            else:
                parts.append(inner)
        text = "".join(parts)
        limit = rng.choice([200, 1000, LIMIT])
        chunks = fmt.split_html(text, limit)
        for chunk in chunks:
            assert fmt.tg_len(chunk) <= limit
            parse_html(chunk)
        joined = "".join(parse_html(c)[0] for c in chunks)
        assert "".join(joined.split()) == "".join(parse_html(text)[0].split())


def test_split_short_text_is_one_chunk() -> None:
    assert fmt.split_html("<b>hi</b>") == ["<b>hi</b>"]
    assert fmt.split_html("  \n ") == []


def test_fit_trims_to_one_message() -> None:
    text = "\n\n".join(f"<b>Paragraph {i}</b> " + "text " * 100 for i in range(50))
    one = fmt.fit(text)
    parse(one)
    assert one.endswith(fmt.ELLIPSIS) and one.startswith("<b>Paragraph 0</b>")


# ---- other messages ---------------------------------------------------------------------


def test_example_questions_come_from_names_in_titles() -> None:
    titles = [
        "Rangers win Old Firm derby at Celtic Park",
        "Iraqi insurgency continues unabated, new hopes for a cabinet",  # no name but word 1
        "Cell chip to power PlayStation 3",
        "8.8 magnitude earthquake hits Chile; tsunami warnings throughout Pacific rim",
        "all lower case title",
        "Lib Dems stress Budget trust gap",
        "Rivals of the £400 Apple...",
        "Celtic beat Rangers at Old Firm again",  # a name already suggested
        "Security warning over 'FBI virus'",
    ]
    assert fmt.example_questions(titles, 10) == [
        "What does the archive say about Old Firm?",
        "What does the archive say about PlayStation 3?",
        "What does the archive say about Chile?",
        "What does the archive say about Lib Dems?",
        "What does the archive say about Apple?",
        "What does the archive say about FBI?",
    ]
    assert len(fmt.example_questions(titles, 2)) == 2


def test_help_stats_reindex_and_limits_parse() -> None:
    for message in (
        fmt.format_help(["What does the archive say about <Mars & Venus>?"], is_admin=True),
        fmt.format_help([], in_group=True),
        fmt.format_stats(
            articles=2225,
            passages=9876,
            version="v000003",
            created_at="2026-11-30T04:03:31+00:00",
            model="all-MiniLM-L6-v2",
        ),
        fmt.format_reindex("skipped 1:\n  a<b>.txt: not UTF-8 & empty", serving="v000004"),
        fmt.plain(fmt.format_rate_limited(12.4)),
        fmt.format_ask_usage("what <is> & this?"),
    ):
        parse(message)
    help_text = parse(fmt.format_help(["Q?"], is_admin=False))[0]
    assert "/reindex" not in help_text and "/stats" in help_text and "Q?" in help_text
    assert "/reindex" in parse(fmt.format_help([], is_admin=True))[0]
    stats = parse(
        fmt.format_stats(
            articles=2225,
            passages=9876,
            version="v3",
            created_at="2026-11-30T04:03:31+00:00",
            model="m",
        )
    )[0]
    assert "2,225" in stats and "9,876" in stats and "2026-11-30 04:03:31 UTC" in stats
    assert "12 s" in fmt.format_rate_limited(12.4)


def test_help_lists_plugin_commands_escaped() -> None:
    text = fmt.format_help([], extra_commands=[("subscribe", "Get alerts on <a topic>")])
    assert "/subscribe — Get alerts on &lt;a topic&gt;" in text
    assert "/reindex" not in text
