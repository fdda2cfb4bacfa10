"""Build speed: a whole ``newsdesk reindex`` process against raw sentence-transformers fp32.

In one run, on the same corpus and machine: raw sentence-transformers fp32 ``encode`` of
every passage's embedding text (what a build embeds for passages; model load not counted),
and a full ``newsdesk reindex`` (a fresh index, the whole process: start-up, loading,
embedding, BM25, FAISS, writing) once per sentence-vector method (``separate``: each
sentence embedded again on its own; ``late``: pooled from its passage's pass). The raw run
sits between the two builds so both see about the same machine load. Every figure is
printed with the CPU model and its relevant flags.

    .venv/bin/python scripts/bench_build.py                      # the shared corpus
    .venv/bin/python scripts/bench_build.py --keep-late var/shared-index-late
    .venv/bin/python scripts/bench_build.py --corpus ../shared/corpus/bbc --methods late
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_CORPUS = [REPO.parent / "shared" / "corpus" / d for d in ("seed", "bbc", "wikinews", "voa")]
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def cpu() -> str:
    """The CPU model, core count and the flags that decide the encoder path."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    have = [f for f in FLAGS if f in flags] or ["none of " + "/".join(FLAGS)]
    return f"{model}, {os.cpu_count()} cores [{' '.join(have)}]"


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}  ({load()})", flush=True)


def passage_texts(dirs: Sequence[Path]) -> tuple[list[str], int]:
    """Every passage's embedding text, cut exactly as a build cuts it, and the sentences."""
    from corpus.loaders import load_corpus
    from index.passages import passage_spans
    from index.sentences import sentence_spans
    from index.types import Passage

    texts, sentences = [], 0
    for article in load_corpus(dirs).articles:
        for span in passage_spans(article):
            text = article.text[span.start : span.end]
            texts.append(Passage(0, article.doc_id, article.title, text, 0, 0).embedding_text())
            sentences += len(sentence_spans(text))
    return texts, sentences


def raw_encode(texts: list[str], batch_size: int) -> float:
    """Seconds raw sentence-transformers fp32 takes to encode ``texts`` (model loaded and
    warmed up first, not counted)."""
    from index.embedders.models import resolve_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    source, _ = resolve_model("all-MiniLM-L6-v2", REPO / "var")
    model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    model.encode(texts[:64], batch_size=batch_size)
    start = time.perf_counter()
    model.encode(texts, batch_size=batch_size, show_progress_bar=False)
    return time.perf_counter() - start


def reindex(dirs: Sequence[Path], index: Path, method: str) -> tuple[float, str, dict]:
    """Wall seconds of a whole ``newsdesk reindex`` process building ``index`` afresh."""
    shutil.rmtree(index, ignore_errors=True)
    env = {**os.environ, "NEWSDESK_SENTENCE_VECTORS": method}
    command = [
        str(REPO / ".venv" / "bin" / "newsdesk"),
        "reindex",
        "--quiet",
        "--index",
        str(index),
    ]
    for d in dirs:
        command += ["--corpus", str(d)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"newsdesk reindex ({method}) failed:\n{done.stdout}\n{done.stderr}")
    manifest = json.loads((index / "current" / "manifest.json").read_text())
    return seconds, done.stdout.strip(), manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, action="append", help="default: shared corpus")
    parser.add_argument("--methods", nargs="+", default=["separate", "late"])
    parser.add_argument("--keep-late", type=Path, help="keep the late-chunked index here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    dirs = [d.resolve() for d in (args.corpus or DEFAULT_CORPUS)]
    machine = cpu()
    say(f"CPU: {machine}")
    texts, sentences = passage_texts(dirs)
    say(f"corpus: {', '.join(d.name for d in dirs)}: {len(texts)} passages, {sentences} sentences")
    work = Path(tempfile.mkdtemp(prefix="bench-build-", dir=REPO / "var"))
    figures: dict[str, object] = {"cpu": machine, "passages": len(texts), "sentences": sentences}
    builds: dict[str, float] = {}
    raw = None
    try:
        steps = list(args.methods)
        steps.insert(1 if len(steps) > 1 else 0, "raw")  # raw between the builds
        for step in steps:
            if step == "raw":
                say(f"raw sentence-transformers fp32 encode of {len(texts)} passages ...")
                raw = raw_encode(texts, args.batch_size)
                say(f"  raw ST fp32: {raw:.1f} s = {len(texts) / raw:.1f} passages/s  [{machine}]")
                continue
            index = (
                args.keep_late.resolve()
                if step == "late" and args.keep_late
                else work / f"index-{step}"
            )
            say(f"newsdesk reindex, NEWSDESK_SENTENCE_VECTORS={step}, into {index} ...")
            seconds, summary, manifest = reindex(dirs, index, step)
            builds[step] = seconds
            say(
                f"  reindex {step}: {seconds:.1f} s (manifest sentence_vectors="
                f"{manifest.get('sentence_vectors', 'separate')})  [{machine}]"
            )
            print("    " + summary.replace("\n", "\n    "), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert raw is not None
    print(f"\nCPU: {machine}")
    print(f"{'what':44} {'seconds':>8} {'x raw ST fp32':>14}")
    print(f"{'raw ST fp32 encode, passages only':44} {raw:8.1f} {1.0:14.2f}")
    for method, seconds in builds.items():
        what = f"newsdesk reindex, sentence vectors {method}"
        print(f"{what:44} {seconds:8.1f} {seconds / raw:14.2f}")
    figures.update(raw_s=raw, reindex_s=builds, ratio={m: s / raw for m, s in builds.items()})
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
