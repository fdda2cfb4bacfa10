"""Domain errors of the engine. The CLI and the bot turn these into messages at the edge.

The engine says what went wrong and carries the data an edge needs to say what to do
(:attr:`IndexDirError.index_dir`); it never spells a command of the CLI or the bot: that
wording lives with them (``newsdesk/messages.py``).
"""

from __future__ import annotations

from pathlib import Path

from corpus.errors import CorpusError, NewsdeskError

__all__ = [
    "BadQuestionError",
    "CorpusError",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexDirError",
    "IndexMismatchError",
    "IndexMissingError",
    "IndexWriteError",
    "ModelError",
    "NewsdeskError",
]


class BadQuestionError(NewsdeskError):
    """The question is empty, too long or otherwise not usable."""


class IndexDirError(NewsdeskError):
    """The index directory ``index_dir`` holds no usable index: a re-index of it repairs
    that. ``index_dir`` is None when the raiser did not say which directory."""

    def __init__(self, message: str, *, index_dir: Path | None = None) -> None:
        super().__init__(message)
        self.index_dir = index_dir


class IndexMissingError(IndexDirError):
    """No index has been built at the configured location."""


class IndexCorruptError(IndexDirError):
    """An index directory exists but is damaged or incomplete."""


class IndexMismatchError(IndexDirError):
    """The index was built with another model or format than the one configured."""


class IndexBusyError(NewsdeskError):
    """Another re-index holds the lock."""


class IndexWriteError(NewsdeskError, OSError):
    """The index could not be written: the disk is full, the folder is read-only, or the
    system refused another way. Nothing was changed: the previous version still serves.
    Also an OSError, so code that handles failed writes as OSError still catches it."""


class ModelError(NewsdeskError):
    """The embedding model cannot be found, verified or loaded."""
