"""Every message the bot sends, as pure functions from engine objects to Telegram HTML.

Rules kept here and nowhere else:

* everything that comes from the corpus or the user is escaped (``esc``/``attr``);
* only tags Telegram knows are produced, always balanced;
* a message never exceeds ``TELEGRAM_LIMIT``: answers are trimmed (optional parts are
  dropped first, then the quote is clipped in plain text before escaping), anything else
  is split by ``split_html`` at paragraph, then line, then word boundaries, closing and
  reopening tags around each cut, never inside a tag or an entity.

Lengths are measured on the HTML source in UTF-16 code units, which is never less than
what Telegram counts (the visible text after parsing), so the limit holds either way.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from index.subscriptions import Alert
from index.types import Answer, Hit, Passage

TELEGRAM_LIMIT = 4096
CALLBACK_LIMIT = 200  # answerCallbackQuery text
ELLIPSIS = "…"
QUOTE_MAX = 1500  # plain characters of a quoted sentence before it is clipped
TITLE_MAX = 160
SNIPPET_MAX = 320
ECHO_MAX = 200

_URL_OK = re.compile(r"^https?://[^\s<>\"]{1,1000}$")
_ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]")


# ---- escaping and measuring -------------------------------------------------------------


def esc(text: str) -> str:
    """Escape text for Telegram HTML (outside attributes)."""
    return html.escape(text, quote=False)


def attr(text: str) -> str:
    """Escape text for a double-quoted attribute value."""
    return html.escape(text, quote=True)


def tg_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """Plain text shortened to at most ``limit`` characters at a word boundary, with '…'."""
    text = " ".join(text.split()) if len(text) > limit else text
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:—-") + ELLIPSIS


def clip_escaped(text: str, budget: int) -> str:
    """Escape ``text`` clipping it first so the escaped result fits ``budget`` units."""
    escaped = esc(text)
    if tg_len(escaped) <= budget:
        return escaped
    lo, hi = 0, len(text)
    best = esc(clip(text, 1)) if budget >= 1 else ""
    while lo <= hi:  # the longest plain clip whose escaped form fits
        mid = (lo + hi) // 2
        candidate = esc(clip(text, mid))
        if tg_len(candidate) <= budget:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def safe_url(url: str) -> str | None:
    url = url.strip()
    return url if _URL_OK.match(url) and len(attr(url)) <= 1200 else None


def short_date(date: str) -> str:
    date = date.strip()
    match = _ISO_DATE.match(date)
    return match.group(1) if match else clip(date, 40)


# ---- pieces -----------------------------------------------------------------------------


def source_line(item: Passage | Alert, *, link: bool = True) -> str:
    """'<a href=url>Title</a> · Outlet · 2024-05-30' (title bold when there is no url)."""
    title = clip(item.title.strip() or item.doc_id, TITLE_MAX)
    url = safe_url(item.url) if link else None
    head = f'<a href="{attr(url)}">{esc(title)}</a>' if url else f"<b>{esc(title)}</b>"
    rest = [esc(clip(part, 80)) for part in (item.source.strip(), short_date(item.date))]
    return " · ".join([head, *[part for part in rest if part]])


SHORT_ANSWER_MAX = 120  # a longer "short answer" is left inside the quote only


def quote_html(
    quote: str,
    highlight: str = "",
    max_chars: int = QUOTE_MAX,
    span: tuple[int, int] | None = None,
) -> str:
    """The quote escaped, the highlight (at ``span`` when given, else where it first
    occurs in the quote) in bold.

    A quote longer than ``max_chars`` is clipped around the highlight with '…' marks.
    """
    if span is not None and quote[span[0] : span[1]] == highlight:
        start = span[0]
    else:
        start = quote.find(highlight) if highlight else -1
    if len(quote) > max_chars:
        if start >= 0 and len(highlight) < max_chars - 2:
            room = max_chars - len(highlight) - 2
            left = min(start, room // 2)
            right = min(len(quote) - start - len(highlight), room - left)
            left = min(start, room - right)
            lo, hi = start - left, start + len(highlight) + right
            pre = (ELLIPSIS if lo > 0 else "") + quote[lo:start]
            post = quote[start + len(highlight) : hi] + (ELLIPSIS if hi < len(quote) else "")
            return f"{esc(pre)}<b>{esc(highlight)}</b>{esc(post)}"
        return esc(clip(quote, max_chars))
    if start < 0:
        return esc(quote)
    end = start + len(highlight)
    return f"{esc(quote[:start])}<b>{esc(highlight)}</b>{esc(quote[end:])}"


def distinct_docs(hits: Iterable[Hit], *, exclude: str | None = None) -> list[Passage]:
    """The best passage of each article, in rank order, without ``exclude``."""
    seen: set[str] = set() if exclude is None else {exclude}
    out: list[Passage] = []
    for hit in hits:
        if hit.passage.doc_id not in seen:
            seen.add(hit.passage.doc_id)
            out.append(hit.passage)
    return out


def _fit(required: str, optional: Sequence[str], limit: int, sep: str = "\n") -> str:
    """``required`` plus as many ``optional`` lines as fit within ``limit``."""
    text = required
    for line in optional:
        candidate = f"{text}{sep}{line}"
        if tg_len(candidate) > limit:
            break
        text = candidate
    if tg_len(text) > limit:  # defensive: callers keep ``required`` small
        text = split_html(text, limit)[0]
    return text


def _list_block(heading: str, passages: Sequence[Passage], limit: int, used: int) -> str:
    """'<b>heading</b>' and one bullet per passage, as many as fit in ``limit - used``."""
    lines = [f"• {source_line(p)}" for p in passages]
    if not lines:
        return ""
    room = limit - used - 2  # the blank line before the block
    block = f"<b>{esc(heading)}</b>"
    if tg_len(block) + tg_len(lines[0]) + 1 > room:
        return ""
    return _fit(block, lines, room)


# ---- answers ----------------------------------------------------------------------------


def format_answer(answer: Answer, *, sources: int = 3, limit: int = TELEGRAM_LIMIT) -> str:
    """The reply to a question: quote and source, or a plain 'no answer' with related reading."""
    if answer.answered and answer.passage is not None:
        passage = answer.passage
        src = source_line(passage)
        budget = limit - tg_len(src) - len("<blockquote></blockquote>\n") - 8
        body = quote_html(answer.quote, answer.highlight, QUOTE_MAX, answer.answer_span)
        if tg_len(body) > budget:  # the quote is made of many '&' or '<': clip it harder
            body = quote_html(answer.quote, "", max(1, budget // 5))
        text = f"<blockquote>{body}</blockquote>\n— {src}"
        if answer.short_answer and tg_len(answer.short_answer) <= SHORT_ANSWER_MAX:
            text = f"<b>{esc(answer.short_answer)}</b>\n{text}"
        others = distinct_docs(answer.hits, exclude=passage.doc_id)[:sources]
        block = _list_block("Also in the archive", others, limit, tg_len(text))
    else:
        echo = esc(clip(" ".join(answer.question.split()), ECHO_MAX))
        text = f"I couldn't find the answer to “{echo}” in the archive."
        related = distinct_docs(answer.hits)[: max(sources, 1)]
        if not related:
            text += "\nNothing in it looks related; try other words."
        block = _list_block("Closest articles", related, limit, tg_len(text))
    return f"{text}\n\n{block}" if block else text


@dataclass(frozen=True, slots=True)
class SourcesPage:
    text: str
    has_more: bool


def format_more_sources(
    hits: Sequence[Hit],
    *,
    page: int,
    page_size: int,
    skip: tuple[str, int] | None = None,
    limit: int = TELEGRAM_LIMIT,
) -> SourcesPage:
    """Page ``page`` (1-based) of the passages for a question, each with a short snippet.

    ``skip`` is the (doc_id, start) of the passage already quoted in the answer.
    """
    ranked = [h.passage for h in hits if (h.passage.doc_id, h.passage.start) != skip]
    first = (page - 1) * page_size
    shown = ranked[first : first + page_size]
    if not shown:
        return SourcesPage("There are no more sources for this question.", False)
    heading = f"<b>More sources</b> ({first + 1}–{first + len(shown)})"
    entries = []
    for number, passage in enumerate(shown, first + 1):
        snippet = esc(clip(passage.text, SNIPPET_MAX))
        entries.append(f"{number}. {source_line(passage)}\n<blockquote>{snippet}</blockquote>")
    text = _fit(heading, entries, limit, sep="\n\n")
    return SourcesPage(text, len(ranked) > first + len(shown))


EXPIRED = "That question has expired (or the bot's memory was reset). Please ask it again."
NO_MORE = "There are no more sources for this question."


# ---- other messages ---------------------------------------------------------------------

_NAME = re.compile(r"[A-Z][\w'’.-]*(?:\s+(?:[A-Z][\w'’.-]*|\d[\w.,]*))*")


def example_questions(titles: Sequence[str], n: int = 3) -> list[str]:
    """A few questions built from article titles: 'What does the archive say about X?'.

    X is a name in the title: a run of capitalised words (digits may follow, as in
    "PlayStation 3"), the longest, then the earliest. A title's lone first word is no
    evidence of a name (titles start with a capital), so a title offering nothing else is
    skipped. One question per distinct name.
    """
    out: list[str] = []
    seen: set[str] = set()
    for title in titles:
        title = " ".join(title.split())
        runs = [
            (m.start(), m.group().rstrip(" .,;:'’"))
            for m in _NAME.finditer(title)
            if not (m.start() == 0 and " " not in m.group().strip())
        ]
        if not runs:
            continue
        _, name = max(runs, key=lambda r: (len(r[1].split()), -r[0]))
        if len(name) < 3 or name.lower() in seen:
            continue
        seen.add(name.lower())
        out.append(f"What does the archive say about {clip(name, 60)}?")
        if len(out) == n:
            break
    return out


COMMANDS: list[tuple[str, str]] = [
    ("ask", "Ask the news archive a question"),
    ("help", "How to ask, with example questions"),
    ("stats", "What the archive holds"),
    ("reindex", "Re-index new articles (admins)"),
]


def format_help(
    examples: Sequence[str],
    *,
    is_admin: bool = False,
    in_group: bool = False,
    extra_commands: Sequence[tuple[str, str]] = (),
) -> str:
    """The /help text; ``extra_commands`` are the plugins' (e.g. topic alerts)."""
    how = (
        "In this group, ask with /ask QUESTION, mention me, or reply to one of my messages."
        if in_group
        else "Just type a question, or use /ask QUESTION."
    )
    lines = [
        "<b>Ask the news archive.</b> I answer with the sentence from an article that holds "
        "the answer, and its source. When the archive has no answer, I say so.",
        "",
        esc(how),
    ]
    if examples:
        lines += ["", "<b>For example</b>"]
        lines += [f"• <code>{esc(clip(q, 200))}</code>" for q in examples]
    lines += ["", "<b>Commands</b>"]
    for command, description in [*COMMANDS, *extra_commands]:
        if command == "reindex" and not is_admin:
            continue
        lines.append(f"/{command} — {esc(description)}")
    return "\n".join(lines)


def format_ask_usage(example: str) -> str:
    return f"Ask like this: <code>/ask {esc(clip(example, 200))}</code>"


def format_stats(*, articles: int, passages: int, version: str, created_at: str, model: str) -> str:
    built = created_at.replace("T", " ").replace("+00:00", " UTC")
    return (
        "<b>Archive</b>\n"
        f"Articles: {articles:,}\n"
        f"Passages: {passages:,}\n"
        f"Index: {esc(version)}, built {esc(built)}\n"
        f"Model: {esc(model)}"
    )


def format_reindex(summary: str, *, serving: str) -> str:
    return (
        f"<b>Re-index finished.</b>\n<pre>{esc(summary)}</pre>\n"
        f"Answering from index {esc(serving)}."
    )


def format_rate_limited(wait_seconds: float) -> str:
    wait = max(1, round(wait_seconds))
    return f"You're asking faster than I can look things up. Please wait {wait} s and ask again."


def plain(text: str) -> str:
    """A plain-text message (escaped) for HTML parse mode."""
    return esc(text)


# ---- splitting --------------------------------------------------------------------------

_UNIT = re.compile(r"<[^<>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);|[^<&]|[<&]")
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)")


def _units(text: str) -> list[str]:
    """Indivisible pieces: whole tags, whole character references, single characters."""
    return _UNIT.findall(text)


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split balanced Telegram HTML into chunks of at most ``limit`` UTF-16 units.

    Cuts prefer a blank line outside any tag, then a line break, then a space, then any
    point between two units; tags open at a cut are closed before it and reopened (with
    their attributes) after it. Whitespace at the cut is dropped.
    """
    if limit < 64:
        raise ValueError("limit too small to split HTML safely")
    if tg_len(text) <= limit:
        return [text] if text.strip() else []
    units = _units(text)
    n = len(units)
    sizes = [tg_len(u) if len(u) > 1 or ord(u) > 0xFFFF else 1 for u in units]
    tags: list[tuple[bool, str] | None] = []  # (closing?, name) for tags, None for the rest
    for unit in units:
        match = _TAG.match(unit) if len(unit) > 1 and unit[0] == "<" else None
        tags.append((bool(match.group(1)), match.group(2).lower()) if match else None)

    Stack = tuple[tuple[str, str], ...]  # (name, opening tag), outermost first
    chunks: list[str] = []
    stack: Stack = ()
    i = 0
    while i < n:
        prefix = "".join(open_tag for _, open_tag in stack)
        size = tg_len(prefix)
        local, closing = stack, sum(len(name) + 3 for name, _ in stack)
        cuts: dict[str, tuple[int, Stack]] = {}
        j = i
        while j < n:
            tag = tags[j]
            new, new_closing = local, closing
            if tag is not None:
                is_end, name = tag
                if is_end and local and local[-1][0] == name:
                    new, new_closing = local[:-1], closing - len(name) - 3
                elif not is_end:
                    new, new_closing = (*local, (name, units[j])), closing + len(name) + 3
            if size + sizes[j] + new_closing > limit:
                break
            size += sizes[j]
            local, closing = new, new_closing
            j += 1
            if j < n and units[j].isspace():
                if units[j] == "\n" and units[j - 1] == "\n" and not local:
                    cuts["para"] = (j, local)
                elif units[j] == "\n":
                    cuts["line"] = (j, local)
                else:
                    cuts["space"] = (j, local)
        cut, cut_stack = j, local
        if j < n:
            for kind in ("para", "line", "space"):
                if kind in cuts and cuts[kind][0] > i:
                    cut, cut_stack = cuts[kind]
                    break
        if cut <= i:
            raise ValueError("a single tag is longer than the limit")
        body = "".join(units[i:cut])
        closers = "".join(f"</{name}>" for name, _ in reversed(cut_stack))
        chunk = (prefix + body.rstrip() + closers).strip()
        if _visible(chunk).strip():
            chunks.append(chunk)
        stack, i = cut_stack, cut
        while i < n and units[i].isspace():
            i += 1
    return chunks


def _visible(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^<>]*>", "", fragment))


def fit(text: str, limit: int = TELEGRAM_LIMIT) -> str:
    """One message: ``text`` or, when too long, its first chunk ending with '…'."""
    if tg_len(text) <= limit:
        return text
    head = split_html(text, limit - 2)[0]
    return head + "\n" + ELLIPSIS
