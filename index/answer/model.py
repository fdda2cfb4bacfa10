"""The fitted answer model: boosted trees over ``FEATURES``, read from a small JSON file.

``scripts/train_answerer.py`` fits two LightGBM models on ``train.jsonl`` and writes them
here as plain arrays, so answering needs numpy only (no LightGBM import on the query
path, and a file a reviewer can diff):

* ``sentence``: the log-odds that a candidate sentence holds the answer span;
* ``answerable``: from the best candidate's and the question's figures (``DECISION``), the
  log-odds that quoting that candidate answers the question; mapped by Platt scaling
  (``calibration``, fitted on out-of-fold scores) to a probability, which the extractor
  compares with ``threshold``;
* ``passages`` (optional): the passage reranker's scores over ``PASSAGE_FEATURES``
  (``index.answer.passages``); a file without it leaves the fused retrieval order.

The file carries its manifest: format version, feature lists, the training data's
SHA-256, the parameters and seed, and the scores measured on train (cross-validated) and
dev. ``load_model`` refuses a file whose feature lists differ from this code's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from index.answer.features import DECISION, FEATURES
from index.answer.passages import PASSAGE_FEATURES, PassageRanker
from index.errors import ModelError

FORMAT_VERSION = 1
DEFAULT_MODEL = Path(__file__).with_name("reader.json")


class AnswerModelError(ModelError):
    """The answer model file is missing, unreadable, or does not fit this code."""


@dataclass(frozen=True, slots=True)
class Trees:
    """A boosted tree ensemble as flat arrays; ``raw(X)`` is the sum of leaf values.

    Node ``n`` of the whole ensemble: ``feature[n] >= 0`` splits (go ``left`` when
    ``X[:, feature] <= threshold``), ``feature[n] == -1`` is a leaf worth ``value[n]``.
    ``roots`` holds each tree's first node.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or not len(x):
            return np.zeros(len(x), dtype=np.float64)
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            feat = self.feature[node]
            inner = feat >= 0
            if not inner.any():
                break
            go_left = x[rows, np.where(inner, feat, 0)] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node].sum(axis=1)

    @classmethod
    def from_lightgbm(cls, dump: dict) -> Trees:
        """From ``Booster.dump_model()`` (numerical splits, no missing-value handling)."""
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        value: list[float] = []
        roots: list[int] = []
        depth = 0

        def add(node: dict, level: int) -> int:
            nonlocal depth
            depth = max(depth, level)
            n = len(feature)
            feature.append(-1)
            threshold.append(0.0)
            left.append(n)
            right.append(n)
            value.append(0.0)
            if "leaf_value" in node:
                value[n] = float(node["leaf_value"])
                return n
            if node.get("decision_type", "<=") != "<=":
                raise ValueError(f"unsupported split {node.get('decision_type')!r}")
            feature[n] = int(node["split_feature"])
            threshold[n] = float(node["threshold"])
            left[n] = add(node["left_child"], level + 1)
            right[n] = add(node["right_child"], level + 1)
            return n

        for tree in dump["tree_info"]:
            roots.append(add(tree["tree_structure"], 0))
        return cls(
            np.asarray(feature, np.int32),
            np.asarray(threshold, np.float64),
            np.asarray(left, np.int32),
            np.asarray(right, np.int32),
            np.asarray(value, np.float64),
            np.asarray(roots, np.int32),
            depth,
        )

    def to_json(self) -> dict:
        return {
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "value": self.value.tolist(),
            "roots": self.roots.tolist(),
            "depth": self.depth,
        }

    @classmethod
    def from_json(cls, data: dict) -> Trees:
        return cls(
            np.asarray(data["feature"], np.int32),
            np.asarray(data["threshold"], np.float64),
            np.asarray(data["left"], np.int32),
            np.asarray(data["right"], np.int32),
            np.asarray(data["value"], np.float64),
            np.asarray(data["roots"], np.int32),
            int(data["depth"]),
        )


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling: probability = 1 / (1 + exp(-(scale * raw + shift)))."""

    scale: float = 1.0
    shift: float = 0.0

    def __call__(self, raw: float) -> float:
        return float(1.0 / (1.0 + np.exp(-(self.scale * raw + self.shift))))


@dataclass(frozen=True, slots=True)
class AnswerModel:
    sentence: Trees
    answerable: Trees
    calibration: Calibration
    threshold: float
    manifest: dict
    word_idf: dict[str, float] = field(default_factory=dict)  # prior IDF of word stems
    passages: Trees | None = None  # the passage reranker (absent: fused order)

    def ranker(self) -> PassageRanker | None:
        """The passage reranker this file carries, if any."""
        return None if self.passages is None else PassageRanker(self.passages, self.word_idf)

    def sentence_scores(self, matrix: np.ndarray) -> np.ndarray:
        """Each candidate's probability of holding the answer span."""
        return 1.0 / (1.0 + np.exp(-self.sentence.raw(matrix)))

    def confidence(self, decision: np.ndarray) -> float:
        """The calibrated probability that quoting the best candidate answers the question."""
        return self.calibration(float(self.answerable.raw(decision[None, :])[0]))

    def to_json(self) -> dict:
        return {
            "manifest": self.manifest,
            "threshold": self.threshold,
            "calibration": {"scale": self.calibration.scale, "shift": self.calibration.shift},
            "sentence": self.sentence.to_json(),
            "answerable": self.answerable.to_json(),
            "word_idf": self.word_idf,
            **({"passages": self.passages.to_json()} if self.passages is not None else {}),
        }


def save_model(model: AnswerModel, path: Path) -> None:
    path.write_text(json.dumps(model.to_json(), separators=(",", ":")) + "\n", encoding="utf-8")


def load_model(path: Path | None = None) -> AnswerModel:
    """Read and check a model file (the shipped one by default)."""
    return _load(Path(path) if path is not None else DEFAULT_MODEL)


@lru_cache(maxsize=4)
def _load(path: Path) -> AnswerModel:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnswerModelError(
            f"The answer model {path} is missing; run scripts/train_answerer.py to make one."
        ) from None
    except (OSError, ValueError) as exc:
        raise AnswerModelError(f"The answer model {path} cannot be read ({exc}).") from exc
    try:
        manifest = data["manifest"]
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise AnswerModelError(
                f"The answer model {path} has format version {version}; this code reads "
                f"version {FORMAT_VERSION}. Retrain it with scripts/train_answerer.py."
            )
        checks = [("features", FEATURES), ("decision_features", DECISION)]
        if "passages" in data:
            checks.append(("passage_features", PASSAGE_FEATURES))
        for key, expected in checks:
            found = tuple(manifest.get(key, ()))
            if found != expected:
                missing = [f for f in expected if f not in found]
                extra = [f for f in found if f not in expected]
                raise AnswerModelError(
                    f"The answer model {path} was trained on other {key.replace('_', ' ')} "
                    f"than this code computes (missing: {', '.join(missing) or 'none'}; "
                    f"unknown: {', '.join(extra) or 'none'}; or another order). "
                    "Retrain it with scripts/train_answerer.py."
                )
        calibration = data["calibration"]
        return AnswerModel(
            sentence=Trees.from_json(data["sentence"]),
            answerable=Trees.from_json(data["answerable"]),
            calibration=Calibration(float(calibration["scale"]), float(calibration["shift"])),
            threshold=float(data["threshold"]),
            manifest=manifest,
            word_idf={str(k): float(v) for k, v in data.get("word_idf", {}).items()},
            passages=Trees.from_json(data["passages"]) if "passages" in data else None,
        )
    except AnswerModelError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise AnswerModelError(f"The answer model {path} is damaged ({exc!r}).") from exc
