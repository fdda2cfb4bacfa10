"""Embedders: one backend per module behind ``Embedder``, wrappers beside them (``lazy``,
``pool``, ``locked``), composed by ``factory.load_embedder``."""

from index.embedders.base import Embedder, normalise
from index.embedders.factory import load_embedder

__all__ = ["Embedder", "load_embedder", "normalise"]
