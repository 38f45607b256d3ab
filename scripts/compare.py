#!/usr/bin/env python
"""Compare two or more runs side by side, or gate a change in CI: python scripts/compare.py runs/main runs/change

Prints the settings that differ, warnings, then each figure with its range and each later run's speed-up over the
first with a noise judgement (between repeats for runs made with --repeat). With --fail-if-slower PCT it exits 3 when
a later run is slower by more than PCT and beyond noise. `--help` for every flag; gpt2_lightning/report/compare_cli.py.
"""

import sys

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
from gpt2_lightning.report.compare_cli import main

if __name__ == "__main__":
    sys.exit(main())
