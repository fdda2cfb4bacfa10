"""Late chunking: a span's vector pooled from the token outputs of its whole text's one
forward pass, so a passage's sentences need no pass of their own.

``pool_spans`` maps each character span onto the tokens whose character offsets start
inside it (special tokens, whose offsets are empty, never count), takes their mean and
L2-normalises it. A span is pooled only when the model saw all of it: when the text was
cut at the model's maximum sequence length (``truncated``), a span that no seen token
follows may reach past the cut and is left to be embedded on its own (``pooled`` False),
as is a span without any token.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pool_spans(
    tokens: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[tuple[int, int]],
    *,
    truncated: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, pooled) of ``spans`` over ``tokens`` (one row per token, ``offsets[i]``
    the character span of token ``i``; (0, 0) for a special token); ``truncated``: the
    tokens stop where the model's maximum sequence length cut the text."""
    tokens = np.asarray(tokens, dtype=np.float32)
    out = np.zeros((len(spans), tokens.shape[1]), dtype=np.float32)
    pooled = np.zeros(len(spans), dtype=bool)
    if not len(spans):
        return out, pooled
    if len(offsets) != tokens.shape[0]:
        raise ValueError(f"{len(offsets)} offsets for {tokens.shape[0]} token outputs")
    real = np.array([end > start for start, end in offsets], dtype=bool)
    starts = np.array([start for start, _ in offsets], dtype=np.int64)
    last_start = int(starts[real].max()) if real.any() else -1
    for i, (begin, end) in enumerate(spans):
        if truncated and last_start < end:  # no token seen after it: it may be cut off
            continue
        inside = real & (starts >= begin) & (starts < end)
        if not inside.any():
            continue
        vector = tokens[inside].mean(axis=0)
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            out[i] = vector / norm
            pooled[i] = True
    return out, pooled


def leading_space(text: str) -> int:
    """How many characters ``str.strip`` removes from the front of ``text`` (the backends
    embed stripped texts, so token offsets count from there)."""
    return len(text) - len(text.lstrip())
