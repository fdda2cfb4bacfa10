"""Articles and the loaders that read them from corpus folders."""

from corpus.article import Article, LoadResult, Skipped

__all__ = ["Article", "LoadResult", "Skipped"]
