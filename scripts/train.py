#!/usr/bin/env python
"""Train GPT-2 on real tokens, timed by the same callbacks as the profiler: python scripts/train.py --data DIR

Same as the ``gpt2-train`` command; ``--help`` lists every setting.
"""

import sys

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
from gpt2_lightning.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
