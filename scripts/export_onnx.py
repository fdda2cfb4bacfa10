"""Export the embedding model to ONNX once, into the data dir's cache (run by setup).

Usage::

    .venv/bin/python scripts/export_onnx.py [--data-dir var] [--model all-MiniLM-L6-v2] [--int8]

The export is keyed by the model's verified weights hash (``<data_dir>/onnx/<hash>-v1/``),
so re-running it is a no-op. Without it, the first ``newsdesk`` command that embeds text
exports the model itself (a few seconds, needs torch and onnx). Exits 0 with a note when
the ONNX backend cannot be used here (onnxruntime or onnx missing): torch is used then.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from index.embedders.models import can_export_onnx, onnx_runtime_available, resolve_model
from index.embedders.onnx import ensure_onnx_model, supports_onnx
from index.errors import NewsdeskError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the embedding model to ONNX (cached).")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("NEWSDESK_DATA_DIR", "var"))
    )
    parser.add_argument(
        "--model", default=os.environ.get("NEWSDESK_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    )
    parser.add_argument("--int8", action="store_true", help="also make the (lossy) int8 model")
    args = parser.parse_args(argv)
    if not (onnx_runtime_available() and can_export_onnx()):
        print(
            "export_onnx: onnxruntime, tokenizers, onnx, torch or transformers is not "
            "installed; the torch backend will be used."
        )
        return 0
    try:
        source, fingerprint = resolve_model(args.model, args.data_dir)
        if not isinstance(source, Path) or not supports_onnx(source):
            print(f"export_onnx: {args.model} cannot run on ONNX here; torch will be used.")
            return 0
        start = time.perf_counter()
        path = ensure_onnx_model(source, fingerprint, args.data_dir)
        if args.int8:
            ensure_onnx_model(source, fingerprint, args.data_dir, int8=True)
    except NewsdeskError as exc:
        print(f"export_onnx: {exc}", file=sys.stderr)
        return 1
    print(f"ONNX model ready: {path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
