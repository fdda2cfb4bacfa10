"""Answer extraction: the sentence that answers a question, chosen by a fitted model.

Modules, bottom up: ``text`` (tokens, stems, stopwords), ``types`` (the kind of answer a
question asks for and where a sentence holds one), ``candidates`` (the sentences of the
top passages), ``features`` (what the model sees of each), ``model`` (the fitted trees,
read from ``reader.json``), ``extractor`` (choose, calibrate, decline or quote).
"""

from index.answer.extractor import AnswerExtractor, Reading
from index.answer.model import AnswerModel, AnswerModelError, load_model
from index.answer.text import content_terms
from index.answer.types import answer_type

__all__ = [
    "AnswerExtractor",
    "AnswerModel",
    "AnswerModelError",
    "Reading",
    "answer_type",
    "content_terms",
    "load_model",
]
