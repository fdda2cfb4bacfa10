"""Newsdesk: answers questions about a news archive with verbatim quotes and sources."""

__version__ = "0.1.0"
