"""How the edges (the ``newsdesk`` commands and the bot's start-up) word the engine's
errors for an operator.

The engine raises typed errors that carry data (:attr:`index.errors.IndexDirError.index_dir`)
and never spells a command; the commands to run are spelled here, once for the CLI and the
bot. This module sits below both (docs/architecture.md): it imports neither.
"""

from __future__ import annotations

from pathlib import Path

from index.errors import IndexDirError, IndexMissingError, NewsdeskError


def rebuild_hint(index_dir: Path, *, build: bool = False) -> str:
    """The command that (re)builds the index at ``index_dir``."""
    verb = "Build" if build else "Rebuild"
    return f"{verb} it with: newsdesk reindex --index {index_dir} --corpus DIR"


def error_message(exc: NewsdeskError) -> str:
    """``exc``'s message, and what to run when a re-index repairs it."""
    message = str(exc).rstrip()
    if isinstance(exc, IndexDirError) and exc.index_dir is not None:
        hint = rebuild_hint(exc.index_dir, build=isinstance(exc, IndexMissingError))
        message = f"{message} {hint}"
    return message
