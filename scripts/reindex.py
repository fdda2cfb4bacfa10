#!/usr/bin/env python
"""Admin re-index: the same as ``newsdesk reindex`` (see ``--help``)."""

from __future__ import annotations

import sys

from newsdesk.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["reindex", *sys.argv[1:]]))
