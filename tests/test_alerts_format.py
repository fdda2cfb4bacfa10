"""Unit tests for bot.alerts_format: digests, previews and topic lists as Telegram HTML.

Every message is parsed with the local Bot API server's HTML parser (Telegram's rules,
stricter about '&') and checked against the 4,096-character limit.
"""

from __future__ import annotations

from dataclasses import replace

from bot import alerts_format as afmt
from bot import format as fmt
from index.subscriptions import (
    Alert,
    BadTopicError,
    DuplicateTopicError,
    Subscription,
    SubscriptionNotFoundError,
    TooManyTopicsError,
)
from tests.botapi.server import parse_html

LIMIT = fmt.TELEGRAM_LIMIT
TOPIC = "Russian troops in Central Asia"
QUOTE = "Russian troops based in Tajikistan began joint exercises with Central Asia allies."


def parse(text: str) -> tuple[str, list[dict]]:
    assert fmt.tg_len(text) <= LIMIT, f"{fmt.tg_len(text)} > {LIMIT}"
    return parse_html(text)


def alert(n: int = 1, **kw: object) -> Alert:
    values: dict = {
        "id": n,
        "chat_id": 42,
        "doc_id": f"tca/{n}.txt",
        "subscription_id": 7,
        "topic": TOPIC,
        "title": f"Russian troops start drills {n}",
        "source": "The Times of Central Asia",
        "url": f"https://example.org/tca/{n}",
        "date": "2024-05-30T10:00:00+00:00",
        "quote": QUOTE,
        "score": 0.5,
        "version": "v000002",
        "queued_at": "2024-05-30T10:00:00+00:00",
        "attempts": 0,
        "last_error": "",
    }
    values.update(kw)
    return Alert(**values)


def test_one_alert_names_title_link_outlet_date_quote_and_topic() -> None:
    [message] = afmt.format_digest([alert()])
    text, entities = parse(message.text)
    assert text.startswith(f"New article on “{TOPIC}”")
    assert "Russian troops start drills 1 · The Times of Central Asia · 2024-05-30" in text
    assert QUOTE in text
    assert "Reply to this message with a question to ask this article" in text
    kinds = {e["type"] for e in entities}
    assert {"bold", "text_link", "blockquote", "italic"} <= kinds
    quote = next(e for e in entities if e["type"] == "blockquote")
    assert text[quote["offset"] : quote["offset"] + quote["length"]] == QUOTE
    link = next(e for e in entities if e["type"] == "text_link")
    assert link["url"] == "https://example.org/tca/1"
    assert message.alert_ids == (1,) and message.doc_ids == ("tca/1.txt",)


def test_corpus_and_topic_text_is_escaped_and_bad_urls_are_not_links() -> None:
    nasty = alert(
        topic="<b>R&D</b> news",
        title="Tom & Jerry <script>",
        url="javascript:alert(1)",
        source="A&B",
        quote="x < y & y > z",
    )
    [message] = afmt.format_digest([nasty])
    text, entities = parse(message.text)
    assert "“<b>R&D</b> news”" in text and "Tom & Jerry <script>" in text
    assert "x < y & y > z" in text and "A&B" in text
    assert not [e for e in entities if e["type"] == "text_link"]


def test_digest_of_one_topic_names_it_once_and_numbers_the_articles() -> None:
    [message] = afmt.format_digest([alert(1), alert(2), alert(3)])
    text, _ = parse(message.text)
    assert text.startswith(f"3 new articles on “{TOPIC}”")
    assert "1. Russian troops start drills 1" in text and "3. Russian troops start drills 3" in text
    assert "Topic:" not in text
    assert "ask these articles" in text
    assert message.alert_ids == (1, 2, 3)


def test_digest_of_several_topics_names_each_articles_topic() -> None:
    [message] = afmt.format_digest([alert(1), alert(2, topic="mobile phone technology")])
    text, _ = parse(message.text)
    assert text.startswith("2 new articles on your topics")
    assert f"Topic: “{TOPIC}”" in text and "Topic: “mobile phone technology”" in text


def test_a_big_digest_is_packed_into_messages_under_the_limit_article_by_article() -> None:
    long_quote = ("Troops & tanks moved <north> again. " * 12).strip()
    alerts = [alert(n, quote=long_quote, title="T" * 300) for n in range(1, 31)]
    messages = afmt.format_digest(alerts)
    assert len(messages) > 1
    seen: list[int] = []
    for number, message in enumerate(messages):
        text, _ = parse(message.text)
        assert text.endswith("/topics to manage alerts.")
        assert ("(continued)" in text.splitlines()[0]) == (number > 0)
        seen += message.alert_ids
        for alert_id in message.alert_ids:
            assert f"{alert_id}. " in text
    assert seen == list(range(1, 31))  # every alert in exactly one message, in order


def test_an_enormous_quote_is_clipped_not_split_mid_tag() -> None:
    [message] = afmt.format_digest([alert(quote="&" * 5000)])
    text, entities = parse(message.text)
    assert any(e["type"] == "blockquote" for e in entities)
    assert "…" in text


def match(n: int, **kw: object) -> Alert:
    values: dict = {
        "topic": TOPIC,
        "doc_id": f"d{n}",
        "title": f"Article {n}",
        "source": "BBC",
        "url": "",
        "date": "2005-01-01",
        "quote": f"Quote number {n} about troops.",
        "score": 0.4,
    }
    values.update(kw)
    return Alert(**values)


def sub(n: int = 1, **kw: object) -> Subscription:
    values: dict = {
        "id": n,
        "chat_id": 42,
        "topic": f"topic {n}",
        "created_at": "2024-05-30T10:00:00+00:00",
        "created_by": 42,
    }
    values.update(kw)
    return Subscription(**values)


def test_subscribed_reply_previews_matches_or_says_nothing_matches_yet() -> None:
    text, entities = parse(afmt.format_subscribed(sub(topic=TOPIC), [match(1), match(2)]))
    assert text.startswith(f"Subscribed to “{TOPIC}”")
    assert "Closest in the archive now" in text
    assert "• Article 1 · BBC · 2005-01-01" in text and "Quote number 2 about troops." in text
    assert sum(e["type"] == "blockquote" for e in entities) == 2
    empty, _ = parse(afmt.format_subscribed(sub(topic="pasta"), []))
    assert "Nothing in the archive matches it yet; the topic is saved" in empty


def test_topic_list_marks_paused_topics_and_buttons_are_short() -> None:
    subs = [sub(1), sub(2, paused=True, paused_reason="Forbidden: bot was blocked by the user")]
    text, _ = parse(afmt.format_topics(subs, 10, removing=True))
    assert text.startswith("Topics followed in this chat (2 of 10)")
    assert "2. topic 2 (paused: Forbidden: bot was blocked by the user)" in text
    assert "resume with the next /subscribe" in text
    empty, _ = parse(afmt.format_topics([], 10, removing=False))
    assert "follows no topics" in empty
    label = afmt.button_label(replace(sub(), topic="a very long topic " * 10))
    assert len(label) <= afmt.BUTTON_TOPIC_MAX + 2
    assert len(afmt.format_removed("x" * 500)) <= fmt.CALLBACK_LIMIT


def test_the_stores_refusals_are_worded_with_the_commands_to_use() -> None:
    too_long = BadTopicError(41, min_chars=3, max_chars=40)
    assert "under 40 characters" in afmt.format_subscription_error(too_long)
    short = BadTopicError(2, min_chars=3, max_chars=40)
    assert "/subscribe" in afmt.format_subscription_error(short)
    duplicate = afmt.format_subscription_error(DuplicateTopicError(1, TOPIC))
    assert TOPIC in duplicate and "/topics" in duplicate
    too_many = afmt.format_subscription_error(TooManyTopicsError(1, 10, 10))
    assert "10 topics" in too_many and "/unsubscribe" in too_many
    assert afmt.format_subscription_error(SubscriptionNotFoundError(1, 9)) == afmt.NOT_FOUND
