"""Newsdesk: answers questions about a news archive with verbatim quotes and sources.

This package holds two layers (docs/architecture.md): its base (``settings``, ``services``,
``messages``) is what the bot and the command line share, and imports neither of them;
``newsdesk.cli`` is the top, and reaches the bot only through ``bot.__main__``.
"""

__version__ = "0.1.0"
