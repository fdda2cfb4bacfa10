"""News-aware sentence splitting that reports character spans.

``sentence_spans(text)`` returns ``(start, end)`` pairs such that ``text[start:end]``
is one sentence with its outer whitespace excluded. Because the output is offsets,
callers can quote a sentence verbatim from the original text.

Rules, in order:

* a newline always ends a sentence (news text uses one paragraph per line, or
  blank-line separated paragraphs);
* a candidate end is a run of ``.``, ``?`` or ``!`` followed by optional closing
  quotes/brackets (which belong to the sentence) and then whitespace or the end
  of the line, so decimals and money ("A$4.67", "£16.5m", "04.69") never split;
* no split when the next word starts with a lower-case letter (``"Why?" he
  asked``, "5 p.m. local time") or after an ellipsis;
* after a period, no split after titles (Mr., Dr., Gen., St. ...), initials
  ("J. K. Rowling"), "No. 5" / "Jan. 5" style abbreviations before a digit, or
  Latin-ish abbreviations (e.g., i.e., vs., cf.);
* after other known abbreviations and dotted acronyms (Inc., Ltd., Co., etc.,
  U.S., U.N.) the split happens only when the next word is a typical sentence
  opener ("The", "He", "But" ...): "the U.S. Army" stays whole, "in the U.S. The
  next day ..." splits.
"""

from __future__ import annotations

import re

__all__ = ["sentence_spans", "split_sentences", "wordset"]


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of a word-list literal."""
    return frozenset(text.split())


_LINE = re.compile(r"[^\n\r]+")
# Terminal punctuation, then closing quotes/brackets, then whitespace or end of line.
_BOUNDARY = re.compile(r"(?:\.{2,}|…|[.?!]+)[\"'”’»)\]]*(?=\s|$)")
_TOKEN_BEFORE = re.compile(r"(\S+)$")
_NEXT_WORD = re.compile(r"\s*[\"'“‘«(\[]*(\S*)")
_DOTTED_ACRONYM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")

# Never end a sentence: a name or number always follows these.
_TITLES = wordset(
    """mr mrs ms messrs dr prof sr jr st gen lt col maj capt cpt sgt cmdr adm gov sen rep
    rev fr hon pres supt insp det cpl pte brig mt ft"""
)
# Never end a sentence mid-sentence (followed by an example, an opponent ...).
_INFIX = wordset("vs v eg e.g ie i.e cf approx viz")
# Followed by a digit: "No. 10", "Jan. 5", "p. 12", "Art. 5".
_BEFORE_DIGIT = wordset(
    """no nos vol p pp art fig sec ch op jan feb apr jun jul aug sep sept oct nov dec
    tel ext"""
)
# May end a sentence; split only when a typical sentence opener follows.
_SOFT = wordset(
    """inc ltd co corp plc bros llc etc jan feb apr jun jul aug sep sept oct nov dec
    mon tue tues thu thur thurs fri dept univ assn govt intl natl"""
)
_OPENERS = wordset(
    """the a an he she it they we i you his her its their our this that these those there
    but and so yet however meanwhile in on at for after before when while if as
    since although though despite mr mrs ms dr last earlier later some many most
    one two three four five six seven eight nine ten"""
)


def _strip_token(token: str) -> str:
    return token.lstrip("\"'“‘«([").lower()


def _should_split(line: str, match: re.Match[str]) -> bool:
    punct = match.group(0)
    following = line[match.end() :]
    if not following.strip():
        return True
    next_word = _NEXT_WORD.match(following)
    word = next_word.group(1) if next_word else ""
    first = word[:1]
    if first.islower():
        return False
    core = punct.rstrip("\"'”’»)]")
    if "?" in core or "!" in core:
        return True
    if core.startswith("..") or core == "…":
        return False
    # A single period: look at the token it closes.
    before = _TOKEN_BEFORE.search(line, 0, match.start())
    if before is None:
        return True
    raw = before.group(1)
    token = _strip_token(raw)
    opener = word.strip("\"'“‘«([,;:").lower() in _OPENERS
    if token in _TITLES or token in _INFIX:
        return False
    if token in _BEFORE_DIGIT and first.isdigit():
        return False
    bare = raw.lstrip("\"'“‘«([")
    if len(bare) == 1 and bare.isupper():
        # An initial ("J. K. Rowling"), unless a clear sentence opener follows.
        return opener
    if token in _SOFT or _DOTTED_ACRONYM.match(bare):
        return opener
    return True


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, outer whitespace excluded."""
    spans: list[tuple[int, int]] = []
    for line_match in _LINE.finditer(text):
        line = line_match.group(0)
        offset = line_match.start()
        start = 0
        for boundary in _BOUNDARY.finditer(line):
            if _should_split(line, boundary):
                _add_span(spans, line, offset, start, boundary.end())
                start = boundary.end()
        _add_span(spans, line, offset, start, len(line))
    return spans


def _add_span(spans: list[tuple[int, int]], line: str, offset: int, start: int, end: int) -> None:
    piece = line[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    s = offset + start + lead
    spans.append((s, s + len(stripped)))


def split_sentences(text: str) -> list[str]:
    """The sentences themselves (convenience wrapper over ``sentence_spans``)."""
    return [text[s:e] for s, e in sentence_spans(text)]
