"""Domain errors. The CLI and the bot turn these into messages at the edge."""

from __future__ import annotations


class NewsdeskError(Exception):
    """Base class: every error here carries a message fit to show a person."""


class BadQuestionError(NewsdeskError):
    """The question is empty, too long or otherwise not usable."""


class IndexMissingError(NewsdeskError):
    """No index has been built at the configured location."""


class IndexCorruptError(NewsdeskError):
    """An index directory exists but is damaged or incomplete."""


class IndexMismatchError(NewsdeskError):
    """The index was built with another model or format than the one configured."""


class IndexBusyError(NewsdeskError):
    """Another re-index holds the lock."""


class IndexWriteError(NewsdeskError, OSError):
    """The index could not be written: the disk is full, the folder is read-only, or the
    system refused another way. Nothing was changed: the previous version still serves.
    Also an OSError, so code that handles failed writes as OSError still catches it."""


class ModelError(NewsdeskError):
    """The embedding model cannot be found, verified or loaded."""


class CorpusError(NewsdeskError):
    """A corpus folder is missing or holds nothing loadable."""


REBUILD_HINT = "Rebuild it with: newsdesk reindex --index {index} --corpus DIR"
