"""ONNX Runtime backend: the same network as sentence-transformers, without torch at query time.

The model is exported once from the verified local weights (``torch.onnx.export`` of the
Hugging Face model with mean pooling and L2 normalisation inside the graph) into
``<data_dir>/onnx/<weights sha256[:16]>-v<EXPORT_FORMAT>/model.onnx``, keyed by the
model's verified hash, so a changed model can never be served by a stale export. The
export needs torch and the ``onnx`` package; it runs at setup (``scripts/export_onnx.py``)
or on first use. Loading and querying need only ``onnxruntime``, ``tokenizers`` and numpy:
this module imports neither torch nor transformers.

Embeddings match the torch backend (same tokenizer file, same truncation, same pooling;
cosine >= 0.9999, see ``tests/test_embedders.py``), so the fp32 backend keeps the model's
fingerprint and reads indexes built with torch. The dynamic int8 quantisation is lossy
(cosine about 0.98): it gets its own fingerprint and is opt-in only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.embedders.base import Embedder, normalise
from index.errors import ModelError

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
OPSET = 17
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
META_FILE = "export.json"
INT8_SUFFIX = "+onnx-int8"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


# ---- facts about a local sentence-transformers folder, read without torch --------------


def _load_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> dict[str, Any]:
    data = _load_json(path)
    return data if isinstance(data, dict) else {}


def pooling_mode(model_dir: Path) -> str:
    """'mean' or 'cls' from the Pooling module's config; ModelError for anything else."""
    pooling_dir = next(
        (
            str(m.get("path", ""))
            for m in _read_json_list(model_dir / "modules.json")
            if str(m.get("type", "")).endswith(".Pooling")
        ),
        "1_Pooling",
    )
    config = _read_json(model_dir / pooling_dir / "config.json")
    modes = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v)
    if modes in ([], ["pooling_mode_mean_tokens"]):
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise ModelError(
        f"The ONNX backend supports mean or CLS pooling only; {model_dir} uses {modes}. "
        "Use NEWSDESK_EMBEDDING_BACKEND=torch for this model."
    )


def supports_onnx(model_dir: Path) -> bool:
    """True when the folder holds what the ONNX backend needs (a tokenizer.json, a pooling)."""
    if not (model_dir / "tokenizer.json").is_file() or not (model_dir / "config.json").is_file():
        return False
    if _extra_modules(model_dir):
        return False
    try:
        pooling_mode(model_dir)
    except (ModelError, OSError, ValueError):
        return False
    return True


def _extra_modules(model_dir: Path) -> list[str]:
    """Modules besides Transformer, Pooling and Normalize (a Dense layer, ...): unsupported."""
    modules = _read_json_list(model_dir / "modules.json")
    known = (".Transformer", ".Pooling", ".Normalize")
    return [str(m.get("type")) for m in modules if not str(m.get("type", "")).endswith(known)]


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    data = _load_json(path)
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def max_seq_length(model_dir: Path) -> int:
    """Truncation length, as sentence-transformers applies it."""
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    if st_config.get("max_seq_length"):
        return int(st_config["max_seq_length"])
    tok_config = _read_json(model_dir / "tokenizer_config.json")
    config = _read_json(model_dir / "config.json")
    limits = [
        int(v)
        for v in (tok_config.get("model_max_length"), config.get("max_position_embeddings"))
        if isinstance(v, int | float) and 0 < v < 100_000
    ]
    return min(limits) if limits else 512


def model_dimension(model_dir: Path) -> int:
    """Embedding dimension, from the pooling config or the transformer config."""
    for path, key in (
        (model_dir / "1_Pooling" / "config.json", "word_embedding_dimension"),
        (model_dir / "config.json", "hidden_size"),
        (model_dir / "config.json", "dim"),
        (model_dir / "config.json", "d_model"),
    ):
        value = _read_json(path).get(key)
        if isinstance(value, int) and value > 0:
            return value
    raise ModelError(f"Cannot tell the embedding dimension of {model_dir} from its config.")


# ---- the export cache --------------------------------------------------------------------


def onnx_cache_dir(data_dir: Path, fingerprint: str) -> Path:
    """Where the export of the model with this (verified) fingerprint lives."""
    safe = "".join(ch for ch in fingerprint if ch.isalnum())[:16] or "model"
    return Path(data_dir) / "onnx" / f"{safe}-v{EXPORT_FORMAT}"


def _meta_ok(directory: Path, fingerprint: str, filename: str) -> bool:
    meta = _read_json(directory / META_FILE)
    entry = meta.get("files", {}).get(filename) if isinstance(meta.get("files"), dict) else None
    path = directory / filename
    if meta.get("fingerprint") != fingerprint or not entry or not path.is_file():
        return False
    stat = path.stat()
    return entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns


def _record(directory: Path, fingerprint: str, filename: str, **extra: Any) -> None:
    meta = _read_json(directory / META_FILE)
    if meta.get("fingerprint") != fingerprint:
        meta = {"fingerprint": fingerprint, "export_format": EXPORT_FORMAT, "files": {}}
    stat = (directory / filename).stat()
    meta.setdefault("files", {})[filename] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        **extra,
    }
    tmp = directory / f".{META_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, directory / META_FILE)


def cached_onnx_model(data_dir: Path, fingerprint: str, *, int8: bool = False) -> Path | None:
    """The cached export for this fingerprint, or None when there is none (or it is stale)."""
    directory = onnx_cache_dir(data_dir, fingerprint)
    filename = INT8_FILE if int8 else FP32_FILE
    return directory / filename if _meta_ok(directory, fingerprint, filename) else None


def ensure_onnx_model(
    model_dir: Path, fingerprint: str, data_dir: Path, *, int8: bool = False
) -> Path:
    """Return the cached ONNX file for this model, exporting (and quantising) it if needed."""
    found = cached_onnx_model(data_dir, fingerprint, int8=int8)
    if found is not None:
        return found
    directory = onnx_cache_dir(data_dir, fingerprint)
    directory.mkdir(parents=True, exist_ok=True)
    with _export_lock(directory):
        found = cached_onnx_model(data_dir, fingerprint, int8=int8)
        if found is not None:  # another process made it while we waited
            return found
        return _export_locked(model_dir, fingerprint, data_dir, directory, int8=int8)


@contextlib.contextmanager
def _export_lock(directory: Path) -> Iterator[None]:
    with (directory / ".lock").open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _export_locked(
    model_dir: Path, fingerprint: str, data_dir: Path, directory: Path, *, int8: bool
) -> Path:
    fp32 = cached_onnx_model(data_dir, fingerprint)
    if fp32 is None:
        log.info("exporting %s to ONNX in %s (once)", model_dir, directory)
        fp32 = directory / FP32_FILE
        export_onnx(model_dir, fp32)
        _record(directory, fingerprint, FP32_FILE, opset=OPSET, source=str(model_dir))
    if not int8:
        return fp32
    target = directory / INT8_FILE
    quantize_int8(fp32, target)
    _record(
        directory, fingerprint, INT8_FILE, quantization="dynamic int8 (MatMul, QInt8, per channel)"
    )
    return target


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the transformer + pooling + normalisation to ``target`` (written atomically)."""
    try:
        import onnx  # noqa: F401 - torch.onnx.export needs it; fail with a clear message
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelError(
            f"Exporting the model to ONNX needs torch, transformers and onnx ({exc}). "
            "Install them (pip install onnx), or use NEWSDESK_EMBEDDING_BACKEND=torch."
        ) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    pooling = pooling_mode(model_dir)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    wrapper = Pooled(model).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 7592, 102, 0, 0]], dtype=torch.long)
    mask = (ids > 0).to(torch.long)
    dynamic = {0: "batch", 1: "tokens"}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".export-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (ids, mask, torch.zeros_like(ids)),
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=["embedding"],
                dynamic_axes={
                    **{name: dynamic for name in INPUT_NAMES},
                    "embedding": {0: "batch"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"Exporting {model_dir} to ONNX failed: {first}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights, per channel (lossy; opt-in backend).

    Per-channel scales keep the cosine to fp32 near 0.99 (per-tensor: about 0.96).
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelError(f"int8 quantisation needs the onnx package ({exc}).") from exc
    tmpdir = Path(tempfile.mkdtemp(prefix=".quant-", dir=target.parent))
    try:
        out = tmpdir / target.name
        quantize_dynamic(
            str(source),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        out.chmod(0o644)
        os.replace(out, target)
    except Exception as exc:
        raise ModelError(f"Quantising {source} to int8 failed: {exc}") from exc
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# ---- the embedder ------------------------------------------------------------------------


class OnnxEmbedder(Embedder):
    """Sentence embeddings from an exported ONNX graph and the model's own tokenizer.json.

    Texts are stripped (as sentence-transformers does), sorted by length so each batch
    pads little, truncated at the model's ``max_seq_length``, and put back in order.
    ``threads`` is ONNX Runtime's intra-op thread count (default: the machine's cores).
    Idle pool threads do not spin-wait: on a shared 2-core machine spinning threads burn
    the CPU the other thread (or FAISS) needs, measured 11.8 vs 16.0 passages/s with
    spinning on vs off under load, and no faster for single queries (docs/benchmarks.md).
    """

    def __init__(
        self,
        onnx_path: Path,
        model_dir: Path,
        *,
        name: str,
        fingerprint: str,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelError(f"The ONNX backend needs onnxruntime and tokenizers ({exc}).") from exc
        self.name = name
        self.fingerprint = fingerprint
        self.onnx_path = Path(onnx_path)
        self.dimension = model_dimension(model_dir)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_seq_length(model_dir))
        pad_id = self._tokenizer.token_to_id("[PAD]")
        self._tokenizer.no_padding()
        self._pad_id = 0 if pad_id is None else int(pad_id)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(
                f"Cannot load the ONNX model {self.onnx_path}: {exc}. Delete it to re-export."
            ) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return self._session.run(None, feeds)[0]

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        cleaned = [str(t).strip() for t in texts]
        order = np.argsort([-len(t) for t in cleaned], kind="stable")
        out = np.empty((len(cleaned), self.dimension), dtype=np.float32)
        step = max(1, batch_size)
        for begin in range(0, len(order), step):
            chunk = order[begin : begin + step]
            out[chunk] = self._run([cleaned[i] for i in chunk])
        return normalise(out)
