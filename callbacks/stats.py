"""The statistics every timing is reported with: the STATS record of results.json (median, mean, p10, p90, min,
max, n). Plain Python, no torch: reports read it too."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

STATS_KEYS = ("n", "median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "max_ms")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted values; q in [0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values_ms: Iterable[float]) -> dict[str, float | int]:
    """Median and spread of a list of durations: the STATS record of results.json."""
    v = sorted(float(x) for x in values_ms)
    if not v:
        return {"n": 0, "median_ms": None, "mean_ms": None, "p10_ms": None, "p90_ms": None,
                "min_ms": None, "max_ms": None}
    return {
        "n": len(v),
        "median_ms": percentile(v, 50),
        "mean_ms": sum(v) / len(v),
        "p10_ms": percentile(v, 10),
        "p90_ms": percentile(v, 90),
        "min_ms": v[0],
        "max_ms": v[-1],
    }
