"""Score article extraction on the real pages in ../shared/web: trafilatura's defaults vs ours.

For every page in ``expected.jsonl``: the share of its ``with`` snippets (article text) found
in the extracted text and of its ``without`` snippets (boilerplate) absent from it, summed
over all pages. Whitespace is folded on both sides before comparing.

    .venv/bin/python scripts/eval_extraction.py [--web ../shared/web] [--misses]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import trafilatura  # noqa: E402

from corpus.feeds.errors import ExtractionError  # noqa: E402
from corpus.feeds.extract import DEFAULTS, TUNED, ExtractOptions, extract_article  # noqa: E402


def _fold(text: str) -> str:
    return " ".join(text.split())


def score(
    web: Path, options: ExtractOptions | None, *, misses: bool = False
) -> tuple[float, float]:
    """(share of ``with`` found, share of ``without`` absent); ``options=None`` runs plain
    ``trafilatura.extract`` on the bytes as served (its own decoding, no Newsdesk code)."""
    rows = [
        json.loads(line)
        for line in (web / "expected.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    found = kept_out = n_with = n_without = 0
    for row in rows:
        page = (web / "pages" / row["file"]).read_bytes()
        if options is None:
            text = _fold(trafilatura.extract(page, url=row["url"]) or "")
        else:
            try:
                text = _fold(extract_article(page, row["url"], options=options).text)
            except ExtractionError:
                text = ""
        for snippet in row["with"]:
            n_with += 1
            if _fold(snippet) in text:
                found += 1
            elif misses:
                print(f"  missing  {row['file']}: {snippet[:70]!r}")
        for snippet in row["without"]:
            n_without += 1
            if _fold(snippet) not in text:
                kept_out += 1
            elif misses:
                print(f"  kept     {row['file']}: {snippet[:70]!r}")
    return found / n_with, kept_out / n_without


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--web", type=Path, default=REPO.parent / "shared" / "web")
    parser.add_argument("--misses", action="store_true", help="list each snippet scored wrong")
    args = parser.parse_args(argv)
    if not (args.web / "expected.jsonl").is_file():
        print(f"no expected.jsonl under {args.web}", file=sys.stderr)
        return 2
    pages = len(list((args.web / "pages").glob("*.html")))
    print(f"{pages} pages in {args.web}")
    runs: tuple[tuple[str, ExtractOptions | None], ...] = (
        ("trafilatura.extract(bytes)", None),
        ("defaults, our decoding", DEFAULTS),
        ("newsdesk (tuned)", TUNED),
    )
    for label, options in runs:
        started = time.perf_counter()
        with_share, without_share = score(args.web, options, misses=args.misses)
        print(
            f"{label:27s} with found {with_share:6.1%}   without absent {without_share:6.1%}"
            f"   ({time.perf_counter() - started:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
