#!/usr/bin/env python
"""Where the time goes in a torch.profiler trace (gpt2_lightning.report.trace_cli; also `gpt2-analyze-trace`).
Plain Python: runs without torch installed."""

import sys

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
from gpt2_lightning.report.trace_cli import main

if __name__ == "__main__":
    sys.exit(main())
