#!/usr/bin/env python
"""The trend of many runs of the same settings (gpt2_lightning.report.history_cli; also `gpt2-history`)."""

import sys

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
from gpt2_lightning.report.history_cli import main

if __name__ == "__main__":
    sys.exit(main())
