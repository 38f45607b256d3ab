#!/usr/bin/env python
"""Time GPT-2's init, inference and training on CPU or GPU: python scripts/profile.py --accelerator gpu

Same as the ``gpt2-profile`` command; ``--help`` lists every setting.
"""

import sys

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)
from gpt2_lightning.profile.cli import main

if __name__ == "__main__":
    sys.exit(main())
