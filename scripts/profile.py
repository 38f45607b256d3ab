#!/usr/bin/env python
"""Time GPT-2's init, inference and training on CPU or GPU: python scripts/profile.py --accelerator gpu

Same as the ``gpt2-profile`` command; ``--help`` lists every setting.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# Python puts this script's folder first on sys.path, where this file's name would shadow the standard library's
# `profile` module (which torch imports through cProfile). Take the folder out; put the repository root in, so the
# script also runs from a checkout that is not installed.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from gpt2_lightning.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
