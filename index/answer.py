"""Pick the sentence that answers a question from retrieved passages, or decline.

The extractor splits the top passages into sentences (``index.sentences``), scores
each sentence with a few cheap features plus one dense-embedding call, and quotes
the best one verbatim from the article by character offsets. When the best
sentence scores below ``threshold`` it declines instead of guessing.

Features of a candidate sentence (all in [0, 1]; question words are weighted 1.0,
1.5 for numbers, 1.25 for long words, 0.6 for short ones):

``dense``     cosine between the question and the sentence embeddings (one
              ``embed`` call for the question and all candidates, at most
              ``max_candidates``; beyond that the lexically weakest are dropped).
``lex``       share of the question's content-word weight found in the sentence.
``lex_ctx``   the same, counting the passage title and the previous sentence of the
              passage as context ("the base lease" vs "the military base ...
              until 2042").
``focus``     like ``lex`` with weights from the rarity of each question word among
              the candidates (pool IDF).
``type``      expected-answer-type match (see ``answer_type``): 1 strong (a year for
              "when", an amount of money for "how much did X pay", a two-word name
              not in the question for "who"), partial for weaker shapes, 0 none;
              0.5 for everyone when the question has no known type.
``near``      type match strength x share of question weight within six words of the
              match ("Tajik Defense Minister Sherali Mirzo"); 0.5 x ``lex`` when the
              question has no known type.
``prev_lex``  ``lex`` of the previous sentence of the passage: answers often follow
              the sentence that restates the question.
``rank``      retrieval prior, 1 / (1 + index of the hit).

Score = confidence, clipped to [0, 1] (weights in ``WEIGHTS``)::

    0.10 dense + 0.25 lex_ctx + 0.30 type + 0.20 near + 0.10 prev_lex + 0.05 rank

(``lex`` and ``focus`` are computed for calibration but weigh 0: on the dev set
they favour the sentence that restates the question over the one that answers it.)
The weights were chosen by a grid search for the share of dev questions whose best
sentence holds the answer, then rounded; ``DEFAULT_THRESHOLD`` was set with
``scripts/calibrate_answers.py``. A sentence that adds no content word beyond the
question's and has no answer-type match is never chosen.

Questions are tokenised for chat typing: lower case, apostrophes optional ("whats",
"wont"), light stemming, British/American spellings, and typo-tolerant matching
(one edit for words of five letters or more: "goverment"; prefixes: "tajik").
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from index.embedders.base import Embedder
from index.sentence_vectors import SentenceVectors
from index.sentences import sentence_spans, wordset
from index.types import Answer, Hit, Passage

__all__ = [
    "DEFAULT_THRESHOLD",
    "WEIGHTS",
    "AnswerExtractor",
    "Candidate",
    "answer_type",
    "content_terms",
]

log = logging.getLogger(__name__)


DEFAULT_THRESHOLD = 0.56
MAX_CANDIDATES = 40
MIN_SENTENCE_WORDS = 3
PROXIMITY_WORDS = 6

WEIGHTS: dict[str, float] = {
    "dense": 0.10,
    "lex": 0.0,
    "lex_ctx": 0.25,
    "focus": 0.0,
    "type": 0.30,
    "near": 0.20,
    "prev_lex": 0.10,
    "rank": 0.05,
}

# ---------------------------------------------------------------------------
# Tokens, stopwords, stemming

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_TOKEN = re.compile(r"\d+(?:[.,:/]\d+)*|[a-z0-9]+")
_ACRONYMS = re.compile(r"\b([a-z])\.([a-z])\.(?:([a-z])\.)?")

# Function words, question words, chat filler and apostrophe-less contractions.
_STOPWORDS = wordset(
    """
    a an the and or but nor so yet if then than that this these those there here
    of in on at to for from by with without into onto over under about above below
    across after before between through during since until till upon within along
    around against among toward towards per via as like
    is am are was were be been being do does did done doing have has had having
    will would shall should can could may might must ought get gets got gotten
    i me my mine we us our ours you your yours he him his she her hers it its
    they them their theirs who whom whose what which when where why how whats
    whos wheres whens whys hows whatre whichs wat wht wut hw whn wher y
    isnt arent wasnt werent dont doesnt didnt havent hasnt hadnt wont wouldnt
    shant shouldnt cant cannot couldnt mightnt mustnt aint im ive id ill youre
    youve youd youll hes shes theyre theyve theyd theyll weve wed were lets thats
    theres heres s t d ll re ve m
    not no yes any some all each every both either neither other another such own
    same very too also just only even still again ever really actually exactly
    please tell know anyone anybody someone somebody something anything thing
    things say said says much many more most less least few lot lots one ones
    kind sort type name named called call
    ok okay hey hi hello thanks thank pls plz u ur r
    """
)
# Kept although common: "us" is nearly always "U.S." in these questions.
_STOPWORDS = _STOPWORDS - {"us"}

_QUESTION_WORD_ALIASES = {
    "whats": "what",
    "wat": "what",
    "wht": "what",
    "wut": "what",
    "whatre": "what",
    "whos": "who",
    "whom": "who",
    "whose": "who",
    "wheres": "where",
    "wher": "where",
    "whens": "when",
    "whn": "when",
    "whys": "why",
    "hows": "how",
    "hw": "how",
    "whichs": "which",
}
_SPELLING = {"defence": "defense", "offence": "offense", "licence": "license"}


def _normalise_text(text: str) -> str:
    text = text.translate(_APOSTROPHES).lower()
    text = _ACRONYMS.sub(lambda m: "".join(g for g in m.groups() if g), text)
    return text.replace("'s ", " ").replace("'", "")


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light, deterministic suffix stripper (plural, -ing, -ed, final e).

    Cached: a question scores a few hundred words, mostly the same few thousand across
    questions, and stemming them was half of the extractor's time (docs/benchmarks.md)."""
    if not word.isalpha():
        return word.replace(",", "")
    word = _SPELLING.get(word, word)
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith("sses"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) - len(suffix) >= 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens, apostrophes removed, commas out of numbers."""
    return [t.replace(",", "") for t in _TOKEN.findall(_normalise_text(text))]


@lru_cache(maxsize=1 << 16)
def _term(token: str) -> str:
    """The stemmed content word of a token, or "" for a stopword or a single letter."""
    if token in _STOPWORDS or (len(token) == 1 and not token.isdigit()):
        return ""
    return stem(token)


def content_terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` (stopwords and single letters dropped)."""
    return [term for tok in tokens(text) if (term := _term(tok))]


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by exactly one insertion, deletion or substitution."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


# ---------------------------------------------------------------------------
# Expected answer type
#
# Kinds: "date", "person", "place", "entity", "reason", and the quantities "money",
# "percent", "count", "measure" and "number" (any quantity).

QUANTITIES = frozenset(("money", "percent", "count", "measure", "number"))

_MEASURE_HEADS = wordset("long tall far big old high fast heavy large deep wide short")
_MONEY_WORDS = wordset(
    """money cost costs pay paid pays spend spent price prices worth fine fined fee fees
    salary salaries bonus bonuses payout payouts earn earned raise raised charge charged
    subscription bid sell sold budget loss losses lose losing profit profits revenue
    compensation damages settle settlement"""
)
_PERCENT_WORDS = wordset("share percentage percent proportion rate")
_NUMBER_WORDS_Q = wordset(
    """number numbers figure figures total sum score scores vote votes tally margin majority
    population amount count result"""
)
_MEASURE_WORDS = wordset("time record height length distance weight size speed age duration")
_DATE_WORDS = wordset("year date day month decade century deadline")
_PLACE_WORDS = wordset("city country town place venue stadium region village state capital")
_MARKET_WORDS = wordset("price prices share shares stock stocks index currency")
_FILLER = wordset("is was are were be been the a an s of do does did has have had will would")


def answer_type(question: str) -> str | None:
    """The kind of answer a question expects, from its question word; None when unclear."""
    toks = [_QUESTION_WORD_ALIASES.get(t, t) for t in tokens(question)]
    for i, tok in enumerate(toks):
        rest = toks[i + 1 :]
        if tok == "how":
            head = rest[0] if rest else ""
            if head == "many":
                return "count"
            if head == "much":
                if _MONEY_WORDS.intersection(rest):
                    return "money"
                return "measure" if {"weigh", "weight", "heavy"}.intersection(rest) else "number"
            if head == "often":
                return "number"
            if head in _MEASURE_HEADS:
                return "measure"
            continue
        if tok == "when":
            return "date"
        if tok == "why":
            return "reason"
        if tok == "who":
            return "person"
        if tok == "where":
            return "money" if _MARKET_WORDS.intersection(rest) else "place"
        if tok in ("what", "which"):
            for word in [w for w in rest if w not in _FILLER][:8]:
                if word in _DATE_WORDS or (word == "time" and "winning" not in rest):
                    return "date"
                if word in _PERCENT_WORDS:
                    return "percent"
                if word in _MONEY_WORDS:
                    return "money"
                if word in _MEASURE_WORDS:
                    return "measure"
                if word in _NUMBER_WORDS_Q:
                    return "number"
                if word in _PLACE_WORDS:
                    return "place"
                if word in ("name", "called") or (word == "kind" and tok == "which"):
                    return "entity"
            if "called" in rest or tok == "which":
                return "entity"
            return None
    return None


_MONTHS = (
    r"January|February|March|April|May|June|July|August|September|October|November|December"
    r"|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\b\.?"
)
_WEEKDAYS = r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DAY = r"\d{1,2}(?:[/-]\d{1,2})?(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]|20)\d\d"
_DATE_RE = re.compile(
    rf"(?:\b(?:midnight|noon|midday)\s+(?:on\s+)?)?"
    rf"(?:\b{_DAY}\s+(?:of\s+)?)?\b(?:{_MONTHS})(?:\s+{_DAY}\b)?(?:,?\s+{_YEAR}\b)?"
    rf"|\b(?:{_WEEKDAYS})\b"
    rf"|\b(?:early|mid|late)[- ]{_YEAR}s?\b"
    rf"|\b{_YEAR}(?:s|/\d\d)?\b"
    rf"|\b\d{{1,2}}(?::\d\d)?\s?(?:am|pm|a\.m\.|p\.m\.|GMT|BST)\b"
    rf"|\b(?:midnight|noon|yesterday|today|tomorrow|tonight)\b"
    rf"|\b(?:last|next|this)\s+(?:week|month|year|weekend|spring|summer|autumn|winter)\b",
)
_END_STEMS = frozenset(map(stem, wordset("end ends expire finish last run deadline close due")))
_START_STEMS = frozenset(map(stem, wordset("start begin open launch found establish")))
_END_CUE = re.compile(
    r"\b(?:until|till|to|through|by|expires?|ends?|runs?|before)\s+(?:\S+\s+){0,2}$", re.I
)
_START_CUE = re.compile(r"\b(?:since|from|in|on|began|started|opened)\s+(?:\S+\s+){0,2}$", re.I)
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty"
    r"|seventy|eighty|ninety|hundred|hundreds|thousand|thousands|million|millions|billion"
    r"|billions|trillion|dozen|dozens|half|quarter|double|twice|treble"
)
_SCALE = r"(?:m|bn|k|tn|million|billion|trillion)\b"
_DIGITS = r"\d(?:[\d,]*\d)?(?:\.\d+)?"
_NUM = rf"(?:{_DIGITS}|(?:{_NUMBER_WORDS}))"
_UNITS = (
    r"km|kilometres?|kilometers?|miles?|metres?|meters?|m|ft|feet|foot|inches|cm|mm|kg"
    r"|kilos?|kilograms?|tonnes?|tons?|lbs?|mph|km/h|kph|years?|months?|weeks?|days?"
    r"|hours?|minutes?|mins?|seconds?|secs?|points?|goals?|runs?|laps?|games?|matches"
)
_QUANTITY_RE = re.compile(
    # money: A$4.67, £16.5m, $515m, US$2bn, 160m euros, 19,800 yen
    rf"(?P<money>(?:\b[A-Z]{{1,2}})?[$£€¥]\s?{_DIGITS}(?:\s?{_SCALE})?"
    rf"|\b{_DIGITS}\s?(?:{_SCALE}\s?)?(?:euros?|dollars|pounds|yen|pence|cents|rupees)\b)"
    rf"|(?P<percent>\b{_DIGITS}\s?(?:%|percent\b|per\s+cent\b)"
    rf"|\b(?:{_NUMBER_WORDS})\s(?:percent|per\s+cent)\b)"
    rf"|(?P<measure>\b{_NUM}(?:[-–]\d[\d,]*)?\s?-?(?:{_UNITS})\b(?:,?\s\d[\d.]*\s(?:{_UNITS})\b)?)"
    rf"|(?P<plain>\b{_DIGITS}(?:[-–/]{_DIGITS})?(?:\s?{_SCALE})?"
    rf"(?!st\b|nd\b|rd\b|th\b|[\w.]*\d))"
    rf"|(?P<word>\b(?:every|once|twice)\s(?:{_NUMBER_WORDS}|\d+)?\s?(?:{_UNITS})\b"
    rf"|\b(?:{_NUMBER_WORDS})(?:\s(?:to|of|in)\s(?:{_NUMBER_WORDS}))?\b)",
    re.IGNORECASE,
)
# Where a match of each pattern can start: a superset of its first characters, so that the
# pattern (a long alternation, tried at every position by ``finditer``) is only tried there.
# ``_scan`` with them finds exactly what ``finditer`` finds (checked on all 44,300 sentences
# of the shared corpus), 2-3x faster.
_DATE_STARTS = re.compile(r"\b[\dA-Zmneylt]")  # digits, capitals, the keywords' first letters
_QUANTITY_STARTS = re.compile(
    rf"[$£€¥]|\b(?:\d|[a-z]{{1,2}}[$£€¥]|{_NUMBER_WORDS}|every|once|twice)", re.IGNORECASE
)


def _scan(pattern: re.Pattern[str], starts: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, trying ``pattern`` only where ``starts`` matches."""
    end = 0
    for start in starts.finditer(text):
        pos = start.start()
        if pos < end:
            continue
        found = pattern.match(text, pos)
        if found:
            yield found
            end = found.end()


# How well a quantity of each shape answers each kind of quantity question.
_QUANTITY_FIT: dict[str, dict[str, float]] = {
    "money": {"money": 1.0, "percent": 0.3, "measure": 0.3, "plain": 0.5, "word": 0.3},
    "percent": {"money": 0.3, "percent": 1.0, "measure": 0.3, "plain": 0.5, "word": 0.3},
    "count": {"money": 0.4, "percent": 0.4, "measure": 0.7, "plain": 1.0, "word": 0.8},
    "measure": {"money": 0.3, "percent": 0.3, "measure": 1.0, "plain": 0.6, "word": 0.5},
    "number": {"money": 0.8, "percent": 0.8, "measure": 0.8, "plain": 1.0, "word": 0.8},
}
_UPPER = "A-ZÀ-ÖØ-Þ"
_CAP_WORD = rf"[{_UPPER}][\w'’&.\-]*\w|[{_UPPER}]"
_CAP_SEQ_RE = re.compile(
    rf"\b(?:{_CAP_WORD})(?:\s+(?:(?:de|da|del|der|van|von|al|bin|le|la|of|and|the)\s+)?"
    rf"(?:{_CAP_WORD}))*"
)
_PLACE_RE = re.compile(rf"\b(?:in|at|near|from|inside|outside|to)\s+(?:the\s+)?({_CAP_WORD})")
_REASON_RE = re.compile(
    r"\b(?:because(?: of)?|due to|owing to|as a result of|thanks to|lack of|in protest"
    r"|in order to|so that|after|following|amid|over|since|caused by|blamed on"
    r"|the reason|insufficient|not enough|on the grounds)\b",
    re.IGNORECASE,
)
_STRONG_REASON = re.compile(
    r"\b(?:because|due to|owing to|as a result|lack of|in protest|caused by|blamed on"
    r"|the reason|insufficient|on the grounds|in order to)\b",
    re.IGNORECASE,
)
_ROLE_WORDS = wordset(
    """minister president chairman chairwoman chair secretary chief general coach manager
    boss director leader judge prime foreign defense defence home interior finance deputy
    vice executive spokesman spokeswoman chancellor governor senator mayor ambassador
    commissioner head captain striker midfielder defender goalkeeper agent lawyer
    attorney officer mp mep king queen prince princess pope former ex assistant
    constable inspector detective sergeant superintendent professor dr mr mrs ms miss"""
)
_QUOTED_RE = re.compile(r"(?<!\w)[\"“‘']([^\"”’'\n]{2,60}?)[\"”’'](?!\w)")
_ORG_WORDS = wordset(
    """society court foundation bank group party council commission committee university
    agency department office service association union company corporation corp inc ltd
    plc club league federation institute ministry government parliament house senate
    congress park street road city county state republic kingdom america europe network
    news times post journal tv radio bbc fc united"""
)
_SENTENCE_OPENERS = wordset(
    """the a an he she it they we i you his her its their our this that these those
    there but and so yet however meanwhile in on at for after before when while if as
    since although though despite mr mrs ms dr"""
)
_PRONOUN_LEAD = re.compile(
    r"^[\"“']?(?:He|She|It|They|This|That|These|Those|His|Her|Its|Their|The move|The deal)\b"
)


@dataclass(slots=True)
class _Match:
    text: str
    start: int
    strength: float


def _cap_sequences(sentence: str) -> list[tuple[int, int, bool]]:
    """Runs of capitalised words: (start, end, starts the sentence)."""
    spans: list[tuple[int, int, bool]] = []
    first = len(sentence) - len(sentence.lstrip(" \"“‘'("))
    for m in _CAP_SEQ_RE.finditer(sentence):
        s, e = m.start(), m.end()
        words = sentence[s:e].split()
        at_start = s == first
        while words and at_start and words[0].lower() in _SENTENCE_OPENERS:
            s += len(words[0])
            while s < e and sentence[s].isspace():
                s += 1
            words = words[1:]
            at_start = False
        if words:
            spans.append((s, e, s == first))
    return spans


def _trim_name(sentence: str, start: int, end: int, question: set[str]) -> tuple[int, int]:
    """Drop leading words of a capitalised run that the question or a role title explain."""
    text = sentence[start:end]
    parts = list(re.finditer(r"\S+", text))
    keep = 0
    for i, part in enumerate(parts):
        word = part.group(0).strip(",.")
        low = _normalise_text(word).replace("'", "")
        if low in _ROLE_WORDS or _in_terms(low, question) or (i == keep and low == "the"):
            keep = i + 1
    if keep >= len(parts):
        return start, start
    tail = parts[-1].group(0)
    trimmed_end = end - (len(tail) - len(tail.rstrip(",.")))
    return start + parts[keep].start(), trimmed_end


def _in_terms(text: str, terms: set[str]) -> bool:
    toks = tokens(re.sub(r"['’]s?$", "", text.strip(" ,.;:")))
    if not toks:
        return False
    return all(stem(t) in terms or t in terms for t in toks)


def type_matches(kind: str | None, sentence: str, question_terms: set[str]) -> list[_Match]:
    """Spans of ``sentence`` that look like an answer of ``kind`` not given by the question."""
    if kind is None:
        return []
    found: list[_Match] = []
    if kind == "date":
        dates = [(m.start(), m.end(), m.group(0)) for m in _scan(_DATE_RE, _DATE_STARTS, sentence)]
        cue = None
        if question_terms & _END_STEMS:
            cue = _END_CUE
        elif question_terms & _START_STEMS:
            cue = _START_CUE
        for s, _, value in dates:
            if not _in_terms(value, question_terms):
                strength = 1.0 if re.search(r"\d|day\b|midnight|noon", value) else 0.6
                if cue is not None and not cue.search(sentence, 0, s):
                    strength *= 0.8  # "until 2042" answers "when does it end", "in 2012" less
                found.append(_Match(value, s, strength))
    elif kind in QUANTITIES:
        fit = _QUANTITY_FIT[kind]
        quantities = list(_scan(_QUANTITY_RE, _QUANTITY_STARTS, sentence))
        # The date scan is the costliest regex here: run it only when a day can clash.
        dates = (
            [(m.start(), m.end(), m.group(0)) for m in _scan(_DATE_RE, _DATE_STARTS, sentence)]
            if quantities
            else []
        )
        for m in quantities:
            shape = m.lastgroup or "plain"
            value = m.group(0)
            if _in_terms(value, question_terms):
                continue
            if shape == "plain" and re.fullmatch(_YEAR, value):
                continue  # a bare year is a date, not a quantity
            if any(s <= m.start() < e and not re.fullmatch(_YEAR, v) for s, e, v in dates):
                continue  # the day of a date ("16 November")
            found.append(_Match(value, m.start(), fit[shape]))
    elif kind in ("person", "entity", "place"):
        places = {m.start(1) for m in _PLACE_RE.finditer(sentence)}
        for s, e, at_start in _cap_sequences(sentence):
            s, e = _trim_name(sentence, s, e, question_terms)
            value = sentence[s:e]
            if e <= s or _DATE_RE.fullmatch(value) or len(value) < 2:
                continue
            words = len(value.split())
            if kind == "person":
                strength = 1.0 if words >= 2 else 0.7
                if _ORG_WORDS.intersection(w.strip(",.").lower() for w in value.split()):
                    strength = 0.4  # "the Hansard Society" is not a person
            elif kind == "place":
                strength = 1.0 if s in places else 0.5
            else:
                strength = 1.0
            if at_start and words == 1:
                strength *= 0.5  # "Broadcasters should ..." is no name
            found.append(_Match(value, s, strength))
        if kind == "entity":
            for m in _QUOTED_RE.finditer(sentence):
                if not _in_terms(m.group(1), question_terms):
                    found.append(_Match(m.group(1), m.start(1), 1.0))
    elif kind == "reason":
        for m in _REASON_RE.finditer(sentence):
            tail = re.match(r"[^,.;:]*", sentence[m.start() :])
            value = tail.group(0).rstrip() if tail else m.group(0)
            if len(value.split()) > 12:
                value = m.group(0)
            strength = 1.0 if _STRONG_REASON.match(m.group(0)) else 0.5
            found.append(_Match(value, m.start(), strength))
    return found


# ---------------------------------------------------------------------------
# Candidates and scoring


@dataclass(slots=True)
class Candidate:
    """One sentence of a retrieved passage, with its features and score."""

    hit_index: int
    passage: Passage
    start: int  # offset in the article
    end: int
    text: str
    previous: str = ""
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    novel: int = 0
    type_spans: list[_Match] = field(default_factory=list)
    eligible: bool = True
    vector: np.ndarray | None = None  # stored at index time, if any


class AnswerExtractor:
    """Chooses the answering sentence among the top passages of a search, or declines.

    ``threshold`` applies to the confidence (the best sentence's score, see the
    module docstring); raise it to decline more. ``max_passages`` is how many of
    the hits (best first) are read.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_passages: int = 5,
        max_candidates: int = MAX_CANDIDATES,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.max_passages = max_passages
        self.max_candidates = max_candidates

    # -- public -------------------------------------------------------------

    def extract(
        self,
        question: str,
        hits: Sequence[Hit],
        article_text: Callable[[str], str],
        *,
        query_vector: np.ndarray | None = None,
        sentence_vectors: SentenceVectors | None = None,
    ) -> Answer:
        """Pick the answering sentence, or decline. ``query_vector`` (the question's
        embedding) and ``sentence_vectors`` (stored at index time) spare the embedder:
        only sentences without a stored vector are embedded here."""
        hits = list(hits)
        candidates = self.score_sentences(
            question,
            hits,
            article_text,
            query_vector=query_vector,
            sentence_vectors=sentence_vectors,
            only_best=True,
        )
        eligible = [c for c in candidates if c.eligible]
        if not eligible:
            return Answer(question, answered=False, hits=hits, confidence=0.0)
        best = max(eligible, key=lambda c: (c.score, -c.hit_index, -c.start))
        confidence = round(best.score, 4)
        if confidence < self.threshold:
            return Answer(question, answered=False, hits=hits, confidence=confidence)

        start, end = self._quote_bounds(best, candidates)
        doc_id = best.passage.doc_id
        try:
            article = article_text(doc_id)
        except Exception:  # any lookup failure means we cannot quote
            log.warning("answer: article %r could not be read; declining", doc_id)
            return Answer(question, answered=False, hits=hits, confidence=confidence)
        quote = article[start:end]
        if not quote.strip() or quote not in article or best.text not in quote:
            log.warning("answer: quote not found verbatim in article %r; declining", doc_id)
            return Answer(question, answered=False, hits=hits, confidence=confidence)
        highlight = self._highlight(best, quote, start, set(content_terms(question)))
        if highlight and highlight not in quote:
            highlight = ""
        return Answer(
            question,
            answered=True,
            quote=quote,
            highlight=highlight,
            passage=best.passage,
            confidence=confidence,
            hits=hits,
        )

    def score_sentences(
        self,
        question: str,
        hits: Sequence[Hit],
        article_text: Callable[[str], str],
        *,
        query_vector: np.ndarray | None = None,
        sentence_vectors: SentenceVectors | None = None,
        only_best: bool = False,
    ) -> list[Candidate]:
        """Every candidate sentence of the top passages with its features and score.

        Passages whose text is not found at their offset in the article are skipped
        (with a warning). Ineligible candidates (nothing new beyond the question)
        are returned with ``eligible=False`` so a calibration script can see them.
        ``only_best``: score fully only the candidates that could still be the best
        eligible one; the others are returned ineligible, without answer-type features
        (the best candidate and its score are the same either way).
        """
        q_terms = content_terms(question)
        if not q_terms:
            return []
        kind = answer_type(question)
        terms_of = _TermsMemo()
        candidates = self._candidates(hits, article_text, sentence_vectors, terms_of)
        if not candidates:
            return []
        q_set = set(q_terms)
        aliases = _typo_aliases(q_set, candidates, terms_of)
        sent_terms = [_expand(set(terms_of(c.text)), aliases) for c in candidates]
        ctx_terms = [
            _expand(terms_of(c.passage.title) | terms_of(c.previous), aliases) | st
            for c, st in zip(candidates, sent_terms, strict=True)
        ]
        prev_terms = [_expand(set(terms_of(c.previous)), aliases) for c in candidates]
        weights = _static_weights(q_terms)
        focus_w = _pool_weights(q_set, sent_terms)

        if len(candidates) > self.max_candidates:
            quick = [
                _coverage(weights, ctx) + 0.5 * _coverage(focus_w, st) - 0.02 * c.hit_index
                for c, st, ctx in zip(candidates, sent_terms, ctx_terms, strict=True)
            ]
            order = sorted(range(len(candidates)), key=lambda i: -quick[i])
            keep = sorted(order[: self.max_candidates])
            candidates = [candidates[i] for i in keep]
            sent_terms = [sent_terms[i] for i in keep]
            ctx_terms = [ctx_terms[i] for i in keep]
            prev_terms = [prev_terms[i] for i in keep]

        dense = self._dense(question, candidates, query_vector)

        for i, cand in enumerate(candidates):
            terms = sent_terms[i]
            cand.novel = len(terms - q_set)
            cand.features = {
                "dense": float(dense[i]),
                "lex": _coverage(weights, terms),
                "lex_ctx": _coverage(weights, ctx_terms[i]),
                "focus": _coverage(focus_w, terms),
                "type": 0.0,  # the answer-type features, below
                "near": 0.0,
                "prev_lex": _coverage(weights, prev_terms[i]),
                "rank": 1.0 / (1.0 + cand.hit_index),
            }
        order: Sequence[int] = range(len(candidates))
        bound: list[float] = []
        prune = only_best and kind is not None
        if prune:
            # type and near are at most 1: a candidate whose other features cannot reach
            # the best score found so far even with both at 1 cannot win; its pattern scans
            # (most of the extractor's time) are skipped.
            top = WEIGHTS["type"] + WEIGHTS["near"]
            bound = [_weighted(c.features) + top for c in candidates]
            order = sorted(order, key=lambda i: -bound[i])
        best = -math.inf
        for i in order:
            cand = candidates[i]
            if prune and bound[i] + 1e-9 < best:
                cand.eligible = False  # cannot be the answer; type features not computed
                continue
            feats = cand.features
            cand.type_spans = type_matches(kind, cand.text, q_set)
            type_score = max((m.strength for m in cand.type_spans), default=0.0)
            near = _proximity(cand.text, cand.type_spans, weights, aliases)
            if kind is None:
                type_score = 0.5
                near = 0.5 * _coverage(weights, sent_terms[i])
            feats["type"], feats["near"] = type_score, near
            cand.score = min(1.0, max(0.0, _weighted(feats)))
            cand.eligible = cand.novel > 0 or (kind is not None and type_score > 0)
            if cand.eligible:
                best = max(best, cand.score)
        return candidates

    # -- internals ----------------------------------------------------------

    def _dense(
        self, question: str, candidates: list[Candidate], query_vector: np.ndarray | None
    ) -> np.ndarray:
        """Cosine of each candidate to the question, embedding only what isn't stored."""
        vectors = [c.vector for c in candidates]
        missing = [i for i, v in enumerate(vectors) if v is None]
        texts = ([] if query_vector is not None else [question]) + [
            candidates[i].text for i in missing
        ]
        embedded = self.embedder.embed(texts) if texts else None
        if query_vector is None:
            assert embedded is not None
            query_vector, embedded = embedded[0], embedded[1:]
        for n, i in enumerate(missing):
            assert embedded is not None
            vectors[i] = embedded[n]
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(candidates), -1)
        return np.clip(matrix @ np.asarray(query_vector, dtype=np.float32), 0.0, 1.0)

    def _candidates(
        self,
        hits: Sequence[Hit],
        article_text: Callable[[str], str],
        stored: SentenceVectors | None = None,
        memo: _TermsMemo | None = None,
    ) -> list[Candidate]:
        """The sentences of the top passages: the spans and vectors stored at index time
        when there are any, else ``sentence_spans`` of the passage (no vectors)."""
        memo = _TermsMemo() if memo is None else memo
        out: list[Candidate] = []
        for index, hit in enumerate(hits[: self.max_passages]):
            passage = hit.passage
            try:
                article = article_text(passage.doc_id)
            except Exception:  # a missing article drops the passage
                log.warning("answer: article %r not available; passage skipped", passage.doc_id)
                continue
            end = passage.start + len(passage.text)
            if passage.start < 0 or article[passage.start : end] != passage.text:
                log.warning(
                    "answer: passage %s does not match article %r at offset %d; skipped",
                    passage.passage_id,
                    passage.doc_id,
                    passage.start,
                )
                continue
            rows: list[tuple[int, int, np.ndarray | None]] = []
            if stored is not None:
                rows.extend(stored.of_passage(passage.passage_id))
            if not rows:
                rows = [(s, e, None) for s, e in sentence_spans(passage.text)]
            previous = ""
            for s, e, vector in rows:
                text = passage.text[s:e]
                if memo.count(text) >= MIN_SENTENCE_WORDS:
                    out.append(
                        Candidate(
                            hit_index=index,
                            passage=passage,
                            start=passage.start + s,
                            end=passage.start + e,
                            text=text,
                            previous=previous,
                            vector=vector,
                        )
                    )
                previous = text
        return out

    def _quote_bounds(self, best: Candidate, candidates: list[Candidate]) -> tuple[int, int]:
        """The best sentence, or it and the sentence before when it leans on a pronoun."""
        if not _PRONOUN_LEAD.match(best.text) or best.features.get("lex", 1.0) >= 0.5:
            return best.start, best.end
        before = [
            c
            for c in candidates
            if c.passage.passage_id == best.passage.passage_id
            and c.passage.doc_id == best.passage.doc_id
            and c.end <= best.start
        ]
        if not before:
            return best.start, best.end
        prev = max(before, key=lambda c: c.end)
        if prev.text != best.previous or prev.features.get("lex", 0.0) <= best.features["lex"]:
            return best.start, best.end
        base = best.passage.start
        if "\n" in best.passage.text[prev.end - base : best.start - base]:
            return best.start, best.end  # never quote across a paragraph break
        return prev.start, best.end

    def _highlight(self, best: Candidate, quote: str, quote_start: int, q_terms: set[str]) -> str:
        """The answer-typed span of the best sentence nearest the question's words."""
        if not best.type_spans:
            return ""
        offset = best.start - quote_start
        anchors = _anchor_positions(best.text, q_terms)
        strongest = max(m.strength for m in best.type_spans)
        pool = [m for m in best.type_spans if m.strength == strongest]

        def distance(m: _Match) -> tuple[float, int]:
            if not anchors:
                return (0.0, len(m.text))
            return (min(abs(m.start - a) for a in anchors), len(m.text))

        chosen = min(pool, key=distance)
        start = offset + chosen.start
        text = quote[start : start + len(chosen.text)]
        return text if text == chosen.text else ""


def _anchor_positions(sentence: str, terms: Iterable[str]) -> list[int]:
    wanted = set(terms)
    return [m.start() for m in re.finditer(r"\w+", sentence) if stem(m.group(0).lower()) in wanted]


def _proximity(
    sentence: str, matches: list[_Match], weights: dict[str, float], aliases: dict[str, str]
) -> float:
    """Best (match strength x share of question weight within a few words of the match)."""
    if not matches:
        return 0.0
    words = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"[\w'’.,$£€%-]+", sentence)]
    stems = [aliases.get(t, t) for t in map(_first_term, (w for _, _, w in words))]
    total = sum(weights.values()) or 1.0
    best = 0.0
    for match in matches:
        end = match.start + len(match.text)
        inside = [i for i, (s, e, _) in enumerate(words) if s < end and e > match.start]
        if not inside:
            continue
        lo, hi = max(0, inside[0] - PROXIMITY_WORDS), inside[-1] + PROXIMITY_WORDS + 1
        window = set(stems[lo:hi])
        covered = sum(w for t, w in weights.items() if t in window) / total
        best = max(best, match.strength * covered)
    return best


def _weighted(features: dict[str, float]) -> float:
    return sum(WEIGHTS[name] * value for name, value in features.items())


def _static_weights(q_terms: list[str]) -> dict[str, float]:
    """Weights of the question's content words: numbers and long words count more."""
    weights: dict[str, float] = {}
    for term in q_terms:
        w = 1.0
        if any(ch.isdigit() for ch in term):
            w = 1.5
        elif len(term) >= 7:
            w = 1.25
        elif len(term) <= 3:
            w = 0.6
        weights[term] = w
    return weights


def _pool_weights(q_terms: set[str], sent_terms: list[set[str]]) -> dict[str, float]:
    """IDF of each question term over the candidate sentences (rare there = specific)."""
    n = len(sent_terms)
    weights: dict[str, float] = {}
    for term in q_terms:
        df = sum(1 for terms in sent_terms if term in terms)
        weights[term] = math.log(1.0 + (n + 1) / (df + 0.5))
    return weights


def _coverage(weights: dict[str, float], terms: set[str]) -> float:
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in weights.items() if t in terms) / total


class _TermsMemo(dict[str, tuple[int, frozenset[str]]]):
    """Token count and ``content_terms`` (as a set) of each distinct text, computed once
    per scoring call: titles and previous sentences repeat across candidates."""

    def analyse(self, text: str) -> tuple[int, frozenset[str]]:
        found = self.get(text)
        if found is None:
            toks = tokens(text)
            found = self[text] = (len(toks), frozenset(t for tok in toks if (t := _term(tok))))
        return found

    def __call__(self, text: str) -> frozenset[str]:
        return self.analyse(text)[1]

    def count(self, text: str) -> int:
        return self.analyse(text)[0]


@lru_cache(maxsize=1 << 16)
def _first_term(word: str) -> str:
    """The first content term of one word ("" if none), as ``_proximity`` reads words."""
    terms = content_terms(word)
    return terms[0] if terms else ""


def _typo_aliases(
    q_terms: set[str], candidates: list[Candidate], terms_of: Callable[[str], frozenset[str]]
) -> dict[str, str]:
    """Map candidate words onto question words they likely stand for.

    A word one edit away from a question word of five letters or more that the
    candidates lack ("goverment" for "government"), or one that extends or is
    extended by a question word of five letters or more ("tajik", "tajikistan").
    """
    vocab: set[str] = set()
    for cand in candidates:
        vocab.update(terms_of(cand.text), terms_of(cand.passage.title))
    aliases: dict[str, str] = {}
    for q in q_terms:
        if len(q) < 5 or not q.isalpha():
            continue
        missing = q not in vocab
        for word in vocab:
            if word == q or word[0] != q[0] or not word.isalpha():
                continue
            short, long_ = (word, q) if len(word) < len(q) else (q, word)
            if (len(short) >= 5 and long_.startswith(short)) or (missing and _one_edit(q, word)):
                aliases[word] = q
    return aliases


def _expand(terms: set[str], aliases: dict[str, str]) -> set[str]:
    if not aliases:
        return terms
    return terms | {aliases[t] for t in terms if t in aliases}
