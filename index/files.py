"""The index's array files: written so a full disk says so, read so a reader cannot crash,
checksummed so damage is seen.

- ``save_npy`` writes the ``.npy`` format through Python's file object. ``np.save`` hands
  a real file to ``ndarray.tofile``, whose failures on a full disk carry no errno
  ("N requested and 0 written"); here they are ordinary ``OSError(ENOSPC)``. The bytes
  are the same as ``np.save``'s.
- ``load_npy`` reads an array into memory (a copy) unless it is large, and only then maps
  it. A mapped file that is truncated in place kills the process with SIGBUS on the next
  access to a page past the new end; a copy cannot be pulled from under the reader. Below
  ``MAP_FROM_BYTES`` (256 MiB a file; the full shared corpus's largest file is 34 MB) the
  memory is worth that; above it, the file is mapped after it was verified, and the rule in
  docs/operations.md (never rewrite a version's files in place) is what protects a reader.
- ``file_checksum`` is SHA-256 of a file's bytes (~0.6 GB/s here: about 140 ms for the
  83 MB index of the full shared corpus, paid once per version, see ``index.store``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

MAP_FROM_BYTES = 256 * 1024 * 1024
CHECKSUM_ALGORITHM = "sha256"


class _Stream:
    """A file seen only through ``write``: numpy then writes the array in chunks with it."""

    def __init__(self, fh) -> None:
        self.write = fh.write


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save(path, array)``, with honest errors (see the module doc)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array(_Stream(fh), np.asanyarray(array), allow_pickle=False)


def load_npy(path: Path) -> np.ndarray:
    """The array in ``path``: read into memory, or memory-mapped when it is large."""
    if path.stat().st_size >= MAP_FROM_BYTES:
        return np.load(path, mmap_mode="r")
    return np.load(path)


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks (model weights, data files)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_checksum(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes, as the index manifest records it."""
    return f"{CHECKSUM_ALGORITHM}:{sha256_file(path)}"
