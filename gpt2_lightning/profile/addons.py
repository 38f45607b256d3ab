"""The add-ons of a timed experiment (diagnosis, energy window, memory snapshot): a failure is recorded, never fatal.

Each add-on measures something beside the timed steps. When one fails, for whatever reason (not only the ones foreseen:
a ValueError from Lightning, a TypeError from a driver binding), its block in results.json is
``{"error": "<Type>: <first line>"}``, the console gets one line, and the experiment's measured figures stand.
"""

from __future__ import annotations

import sys

from callbacks.failures import one_line

__all__ = ["failed", "one_line"]


def failed(experiment: str, what: str, error: str) -> dict[str, str]:
    """Say on the console that ``what`` failed for ``experiment``; the ``{"error": ...}`` block for results.json."""
    print(f"profile.py: {experiment}: {what} failed: {error}", file=sys.stderr, flush=True)
    return {"error": error}
