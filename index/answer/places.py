"""Countries a question names, and whether an article speaks of them: the near-miss signal
for "right story, wrong country".

A question that names a country its article never mentions (by name, people or capital)
is rarely answered by that article: on ``train.jsonl`` it holds for the top passage's
article of 4 of the 768 answerable questions, against 18 of the 80 "swap" questions. The
rarest missing word (``absent_idf``) cannot say this alone, since most answerable
questions also ask some word their article lacks (a paraphrase, "defence" for "defense").
North and South Korea are one country here: a swap between them is not caught.

Only country names and their people are read in a question ("kazakhstan", "tajik"), not
capitals ("Real Madrid", "a win in Rome"); an article mentions a country by any of the
three ("Moscow and Dushanbe signed"). Lower-case "us" is a pronoun; "US" and "U.S." are
the country.
"""

from __future__ import annotations

import re
from functools import lru_cache

# One country per line: its key, then names and people, then "|" and capitals or
# metonyms that only count in an article. Ambiguous words are left out (Jordan, Georgia,
# Chad, Guinea, Niger: names and states as often as countries).
_COUNTRIES = """
afghanistan afghan afghans | kabul
albania albanian | tirana
algeria algerian | algiers
argentina argentine argentinian | buenos
armenia armenian | yerevan
australia australian australians | canberra
austria austrian | vienna
azerbaijan azerbaijani azeri | baku
bangladesh bangladeshi | dhaka
belarus belarusian | minsk
belgium belgian | brussels
bolivia bolivian
bosnia bosnian | sarajevo
brazil brazilian | brasilia
bulgaria bulgarian | sofia
burma burmese myanmar | yangon rangoon
cambodia cambodian | phnom
canada canadian canadians | ottawa
chile chilean | santiago
china chinese | beijing
colombia colombian | bogota
croatia croatian | zagreb
cuba cuban | havana
cyprus cypriot | nicosia
czech czechia | prague
denmark danish | copenhagen
egypt egyptian | cairo
estonia estonian | tallinn
ethiopia ethiopian | addis
finland finnish | helsinki
france french | paris
germany german germans | berlin
ghana ghanaian | accra
greece greek | athens
hungary hungarian | budapest
iceland icelandic | reykjavik
india indian indians | delhi
indonesia indonesian | jakarta
iran iranian | tehran
iraq iraqi | baghdad
ireland irish | dublin
israel israeli | jerusalem
italy italian | rome
japan japanese | tokyo
kazakhstan kazakh | astana almaty
kenya kenyan | nairobi
korea korean | seoul pyongyang
kuwait kuwaiti
kyrgyzstan kyrgyz | bishkek
latvia latvian | riga
lebanon lebanese | beirut
libya libyan | tripoli
lithuania lithuanian | vilnius
malaysia malaysian | kuala
mexico mexican
mongolia mongolian
morocco moroccan | rabat
nepal nepalese | kathmandu
netherlands dutch holland | amsterdam
newzealand | wellington
nigeria nigerian | abuja lagos
norway norwegian | oslo
pakistan pakistani | islamabad
palestine palestinian palestinians | gaza
peru peruvian | lima
philippines filipino philippine | manila
poland polish | warsaw
portugal portuguese | lisbon
qatar qatari | doha
romania romanian | bucharest
russia russian russians | moscow kremlin
saudi saudis | riyadh
serbia serbian | belgrade
singapore singaporean
slovakia slovak | bratislava
somalia somali | mogadishu
southafrica | johannesburg pretoria
spain spanish | madrid
srilanka | colombo
sudan sudanese | khartoum
sweden swedish | stockholm
switzerland swiss | bern geneva zurich
syria syrian | damascus
taiwan taiwanese | taipei
tajikistan tajik | dushanbe
tanzania tanzanian
thailand thai | bangkok
turkey turkish | ankara istanbul
turkmenistan turkmen | ashgabat
uganda ugandan | kampala
ukraine ukrainian | kiev kyiv
uk britain british england english scotland scottish wales welsh | london
us usa america american americans | washington
uzbekistan uzbek | tashkent
venezuela venezuelan | caracas
vietnam vietnamese | hanoi
yemen yemeni | sanaa
zimbabwe zimbabwean | harare
"""

_PHRASES = (  # before splitting into words
    (re.compile(r"\bU\.S\.(?:A\.)?|\bUS\b|\bUSA\b"), " usa "),
    (re.compile(r"\bU\.K\.|\bUK\b"), " uk "),
    (re.compile(r"\bunited\s+states\b", re.I), " usa "),
    (re.compile(r"\bunited\s+kingdom\b", re.I), " uk "),
    (re.compile(r"\bnew\s+zealand(?:ers?)?\b", re.I), " newzealand "),
    (re.compile(r"\bsouth\s+african?s?\b", re.I), " southafrica "),
    (re.compile(r"\bsri\s+lankan?s?\b", re.I), " srilanka "),
)
_WORD = re.compile(r"[a-z]+")


def _tables() -> tuple[dict[str, str], dict[str, str]]:
    named: dict[str, str] = {}
    mentioned: dict[str, str] = {}
    for line in _COUNTRIES.strip().splitlines():
        names, _, others = line.partition("|")
        words = names.split()
        key = words[0]
        for word in words:
            named[word] = mentioned[word] = key
        for word in others.split():
            mentioned[word] = key
    named.pop("us", None)  # lower-case "us" is a pronoun: the country is "usa" by _PHRASES
    mentioned.pop("us", None)
    return named, mentioned


_NAMED, _MENTIONED = _tables()


def _words(text: str) -> list[str]:
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return _WORD.findall(text.lower())


def named_countries(question: str) -> frozenset[str]:
    """The countries a question names by name or people ("tajik" -> tajikistan)."""
    return frozenset(_NAMED[w] for w in _words(question) if w in _NAMED)


@lru_cache(maxsize=512)
def mentioned_countries(text: str) -> frozenset[str]:
    """The countries a text mentions by name, people or capital. Cached by text, like
    ``features.article_terms``: the articles questions read are scanned once."""
    return frozenset(_MENTIONED[w] for w in _words(text) if w in _MENTIONED)
