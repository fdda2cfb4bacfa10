"""The project's base error, at the bottom layer so every layer may raise and catch it.

Every :class:`NewsdeskError` carries a message fit to show a person; the edges (the CLI and
the bot) turn it into a line or a reply. ``index.errors`` re-exports both names, so code
above the corpus may keep importing them from there.
"""

from __future__ import annotations


class NewsdeskError(Exception):
    """Base class: every error here carries a message fit to show a person."""


class CorpusError(NewsdeskError):
    """A corpus folder is missing or holds nothing loadable."""
