"""Embedders: one backend per module behind ``Embedder``."""

from index.embedders.base import Embedder, normalise
from index.embedders.models import load_embedder

__all__ = ["Embedder", "load_embedder", "normalise"]
