"""Vector stores (approximate nearest neighbours): one backend behind ``VectorStore``."""

from index.ann.base import VectorStore
from index.ann.faiss_store import FaissStore

__all__ = ["FaissStore", "VectorStore"]
