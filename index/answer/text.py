"""Question and sentence text as the answer reader sees it: tokens, stems, stopwords.

Questions are tokenised for chat typing: lower case, apostrophes optional ("whats",
"wont"), light stemming, British/American spellings, and typo-tolerant matching
(one edit for words of five letters or more: "goverment"; prefixes: "tajik").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache

from index.sentences import wordset

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

QUESTION_WORD_ALIASES = {
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


_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"'})


def fold(text: str) -> str:
    """Case-folded, curly quotes straightened: how answer spans are compared."""
    return text.translate(_QUOTES).lower()


def normalise_text(text: str) -> str:
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
    return [t.replace(",", "") for t in _TOKEN.findall(normalise_text(text))]


@lru_cache(maxsize=1 << 16)
def _term(token: str) -> str:
    """The stemmed content word of a token, or "" for a stopword or a single letter."""
    if token in _STOPWORDS or (len(token) == 1 and not token.isdigit()):
        return ""
    return stem(token)


def content_terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` (stopwords and single letters dropped)."""
    return [term for tok in tokens(text) if (term := _term(tok))]


def one_edit(a: str, b: str) -> bool:
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


def static_weights(q_terms: list[str]) -> dict[str, float]:
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


def pool_weights(q_terms: set[str], sent_terms: list[set[str]]) -> dict[str, float]:
    """IDF of each question term over the candidate sentences (rare there = specific)."""
    n = len(sent_terms)
    weights: dict[str, float] = {}
    for term in q_terms:
        df = sum(1 for terms in sent_terms if term in terms)
        weights[term] = math.log(1.0 + (n + 1) / (df + 0.5))
    return weights


def coverage(weights: dict[str, float], terms: set[str]) -> float:
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in weights.items() if t in terms) / total


class TermsMemo(dict[str, tuple[int, frozenset[str]]]):
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
def first_term(word: str) -> str:
    """The first content term of one word ("" if none), as ``proximity`` reads words."""
    terms = content_terms(word)
    return terms[0] if terms else ""


def typo_aliases(q_terms: set[str], vocab: Iterable[str]) -> dict[str, str]:
    """Map words of ``vocab`` (the candidates' terms) onto question words they likely
    stand for.

    A word one edit away from a question word of five letters or more that the
    vocabulary lacks ("goverment" for "government"), or one that extends or is
    extended by a question word of five letters or more ("tajik", "tajikistan").
    """
    words = set(vocab)
    aliases: dict[str, str] = {}
    for q in q_terms:
        if len(q) < 5 or not q.isalpha():
            continue
        missing = q not in words
        for word in words:
            if word == q or word[0] != q[0] or not word.isalpha():
                continue
            short, long_ = (word, q) if len(word) < len(q) else (q, word)
            if (len(short) >= 5 and long_.startswith(short)) or (missing and one_edit(q, word)):
                aliases[word] = q
    return aliases


def expand(terms: set[str], aliases: dict[str, str]) -> set[str]:
    if not aliases:
        return terms
    return terms | {aliases[t] for t in terms if t in aliases}
