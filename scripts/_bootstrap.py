"""Imported first by every script in this folder.

Python puts a script's folder first on sys.path, where scripts/profile.py would shadow the standard library's
`profile` module (which torch imports through cProfile). This takes the folder out and puts the repository root in,
so the scripts also run from a checkout that is not installed.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))
