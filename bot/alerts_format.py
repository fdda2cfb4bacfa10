"""Every message of topic alerts, as pure functions to Telegram HTML (see bot.format's rules).

Corpus and user text is escaped; a message never exceeds ``TELEGRAM_LIMIT``. A digest is
packed article by article into as few messages as fit, so each message knows exactly
which alerts (and articles) it carries; ``split_html`` is the last guard for a message
that would still be too long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.format import (
    TELEGRAM_LIMIT,
    clip,
    clip_escaped,
    esc,
    source_line,
    split_html,
    tg_len,
)
from index.subscriptions import (
    MAX_TOPIC_CHARS,
    Alert,
    BadTopicError,
    DuplicateTopicError,
    Subscription,
    SubscriptionError,
    SubscriptionNotFoundError,
    TooManyTopicsError,
)

ALERT_QUOTE_MAX = 700  # plain characters of an alert's quote (matching caps it at 400)
PREVIEW_QUOTE_MAX = 300
QUOTE_BUDGET = 1500  # UTF-16 units of the escaped quote (a quote full of '&' is clipped more)
BUTTON_TOPIC_MAX = 40
EXAMPLE_TOPIC = "Russian troops in Central Asia"


def topic_html(topic: str) -> str:
    return f"“{esc(clip(topic, MAX_TOPIC_CHARS))}”"


def quote_block(quote: str, max_chars: int = ALERT_QUOTE_MAX) -> str:
    if not quote.strip():
        return ""
    return f"<blockquote>{clip_escaped(clip(quote.strip(), max_chars), QUOTE_BUDGET)}</blockquote>"


# ---- the digest --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestMessage:
    """One message of a chat's digest and the alerts it carries."""

    text: str
    alert_ids: tuple[int, ...]
    doc_ids: tuple[str, ...]


def _entry(alert: Alert, number: int | None, with_topic: bool) -> str:
    head = source_line(alert)
    lines = [f"<b>{number}.</b> {head}" if number is not None else head]
    quote = quote_block(alert.quote)
    if quote:
        lines.append(quote)
    if with_topic:
        lines.append(f"Topic: {topic_html(alert.topic)}")
    return "\n".join(lines)


def _heading(alerts: Sequence[Alert], one_topic: bool, part: int) -> str:
    if len(alerts) == 1:
        text = f"<b>New article on {topic_html(alerts[0].topic)}</b>"
    elif one_topic:
        text = f"<b>{len(alerts)} new articles on {topic_html(alerts[0].topic)}</b>"
    else:
        text = f"<b>{len(alerts)} new articles on your topics</b>"
    return text if part == 1 else f"{text} (continued)"


def _footer(count: int) -> str:
    about = "this article" if count == 1 else "these articles"
    return f"<i>Reply to this message with a question to ask {about}. /topics to manage alerts.</i>"


def format_digest(alerts: Sequence[Alert], limit: int = TELEGRAM_LIMIT) -> list[DigestMessage]:
    """One chat's new alerts as one message, or several when they do not fit in one.

    Each entry: the title (a link when there is a url), outlet and date, the quote
    verbatim in a blockquote and, when the digest spans several topics, the topic
    it matched (one topic: it is named in the heading).
    """
    if not alerts:
        return []
    one_topic = len({a.topic for a in alerts}) == 1
    numbered = len(alerts) > 1
    entries = [_entry(a, n if numbered else None, not one_topic) for n, a in enumerate(alerts, 1)]
    messages: list[DigestMessage] = []
    batch: list[int] = []

    def flush() -> None:
        part = len(messages) + 1
        body = "\n\n".join(entries[i] for i in batch)
        text = f"{_heading(alerts, one_topic, part)}\n\n{body}\n\n{_footer(len(batch))}"
        chunks = split_html(text, limit)  # one, unless a single entry is absurdly long
        carried = [alerts[i] for i in batch]
        for chunk in chunks:
            messages.append(
                DigestMessage(
                    chunk,
                    tuple(a.id for a in carried),
                    tuple(dict.fromkeys(a.doc_id for a in carried)),
                )
            )
        batch.clear()

    overhead = tg_len(_heading(alerts, one_topic, 2)) + tg_len(_footer(2)) + 4
    used = overhead
    for i, entry in enumerate(entries):
        size = tg_len(entry) + 2
        if batch and used + size > limit:
            flush()
            used = overhead
        batch.append(i)
        used += size
    if batch:
        flush()
    return messages


# ---- commands ----------------------------------------------------------------------------


def format_subscribe_usage() -> str:
    return (
        "Tell me a topic in a few words and I'll send new articles about it here, "
        "after each update of the archive:\n"
        f"<code>/subscribe {esc(EXAMPLE_TOPIC)}</code>\n"
        "/topics lists the topics this chat follows."
    )


def format_subscribed(sub: Subscription, preview: Sequence[Alert]) -> str:
    """The reply to /subscribe: saved, and what the archive already holds on the topic."""
    head = (
        f"Subscribed to {topic_html(sub.topic)}. I'll send new articles that match it to this chat."
    )
    if not preview:
        return (
            f"{head}\n\nNothing in the archive matches it yet; the topic is saved, and I'll "
            "tell you when an article does."
        )
    lines = [head, "", "<b>Closest in the archive now</b>"]
    for match in preview:
        lines.append(f"• {source_line(match)}")
        quote = quote_block(match.quote, PREVIEW_QUOTE_MAX)
        if quote:
            lines.append(quote)
    lines += [
        "",
        "<i>Not what you meant? /unsubscribe and try other words.</i>",
    ]
    text = "\n".join(lines)
    return text if tg_len(text) <= TELEGRAM_LIMIT else split_html(text)[0]


def format_topics(subs: Sequence[Subscription], max_topics: int, *, removing: bool) -> str:
    """/topics and /unsubscribe: the chat's topics, numbered (buttons come separately)."""
    if not subs:
        return (
            "This chat follows no topics. Follow one with "
            f"<code>/subscribe {esc(EXAMPLE_TOPIC)}</code>"
        )
    lines = [f"<b>Topics followed in this chat</b> ({len(subs)} of {max_topics})"]
    for number, sub in enumerate(subs, 1):
        paused = f" <i>(paused: {esc(clip(sub.paused_reason, 80))})</i>" if sub.paused else ""
        lines.append(f"{number}. {esc(sub.topic)}{paused}")
    lines.append("")
    lines.append(
        "Tap a topic to stop following it, or “All topics”."
        if removing
        else "Tap a topic to stop following it. /subscribe TOPIC adds one."
    )
    if any(s.paused for s in subs):
        lines.append("Paused topics resume with the next /subscribe in this chat.")
    return "\n".join(lines)


def button_label(sub: Subscription) -> str:
    return f"✕ {clip(sub.topic, BUTTON_TOPIC_MAX)}"


def format_removed(topic: str) -> str:
    """Plain text (a callback answer, or escaped for a message)."""
    return f"Stopped following “{clip(topic, 150)}”."


def format_removed_all(count: int) -> str:
    if count == 0:
        return "This chat followed no topics."
    noun = "topic" if count == 1 else "topics"
    return f"Stopped following all {count} {noun}. No more alerts will arrive here."


GROUP_RULE = (
    "In a group, only its admins can add or remove topics (whoever added a topic may also "
    "remove it)."
)
NOT_FOUND = "That topic is not followed in this chat (any more). See /topics."


def format_subscription_error(exc: SubscriptionError) -> str:
    """Plain text: why the store refused a topic, and what to do instead."""
    if isinstance(exc, BadTopicError):
        if exc.too_long:
            return (
                f"That topic is {exc.length} characters long; please keep it under "
                f"{exc.max_chars} characters (a few words work best)."
            )
        return f"Please describe the topic in a few words, for example: /subscribe {EXAMPLE_TOPIC}"
    if isinstance(exc, DuplicateTopicError):
        return f"This chat already follows “{exc.topic}”. See /topics for the list."
    if isinstance(exc, TooManyTopicsError):
        return (
            f"This chat already follows {exc.count} topics, the most allowed. "
            "Remove one with /unsubscribe first."
        )
    if isinstance(exc, SubscriptionNotFoundError):
        return NOT_FOUND
    return str(exc)
