"""The regression gate: ``compare.py BASELINE CANDIDATE --fail-if-slower PCT``, for CI.

A candidate regresses when it is slower than the baseline by more than PCT *and* the difference is beyond noise
(gpt2_lightning.report.judgement), on time per token or on tokens/s of inference or training, or when it lacks a gated
figure the baseline has (the experiment failed or was not run). "Slower by PCT" is time: a
token takes PCT% longer, so tokens/s falls to 1/(1 + PCT/100) of the baseline's (a 20% slowdown is tokens/s x 0.83).
Model builds (init) are not gated: they process no tokens.

Exit codes: 0 no regression; 3 at least one (one line each: experiment, figure, both values, the ratio and its
range); 2 the comparison cannot gate: settings that change the work differ (model, precision, batch shape, device)
without ``--allow-different-settings``, or PCT is below what this machine class tells apart (``GATE_FLOOR_PCT``)
without ``--allow-below-floor``.
"""

from __future__ import annotations

from typing import Any

from gpt2_lightning.report.noise import BEYOND_NOISE

EXIT_REGRESSION = 3  # compare.py --fail-if-slower: a regression beyond noise and the threshold
GATED = ("inference: time per token", "inference: tokens/s", "train: time per token", "train: tokens/s")
MUST_MATCH = ("model", "precision", "batch size", "sequence length", "device")
# The smallest slowdown (%) that runs with --repeat 5 tell apart in 9 pairs of 10 on each machine class
# (scripts/noise_check.py; docs/performance.md "On a quiet machine"). cpu: measured on a quiet 2-core machine (tiny,
# --threads 1, 500 processes): a planted 20% slowdown called slower beyond noise in 9 of 10 pairs, 10% in 1 of 10,
# 30% in 10 of 10, with identical settings called different in 1 of 20 pairs. cuda: PROVISIONAL, from the one pair
# of identical H100 runs in docs/results (0.5-1.1% apart), not yet from repeats.
GATE_FLOOR_PCT = {"cpu": 20.0, "cuda": 3.0}


def gate_floor(runs: list[dict[str, Any]]) -> float:
    """The floor for these runs: the largest of their device types' (an unknown type counts as a CPU)."""
    return max(GATE_FLOOR_PCT.get(r.get("env", {}).get("device_type") or "cpu", GATE_FLOOR_PCT["cpu"]) for r in runs)


def mismatched(differ: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The settings that differ and change the work itself (MUST_MATCH)."""
    return [(name, values) for name, values in differ if name in MUST_MATCH]


def slower_pct(speedup: float) -> float:
    """How much longer a token takes, in %, for an oriented speed-up (below 1: slower)."""
    return (1 / speedup - 1) * 100


def regressions(rows: list[dict[str, Any]], labels: list[str], pct: float) -> list[dict[str, Any]]:
    """Every gated figure of every candidate (runs after the first) that is slower by more than ``pct`` and beyond
    noise."""
    found = []
    for row in rows:
        if row["label"] not in GATED:
            continue
        for i in range(1, len(labels)):
            s = row["speedups"][i]
            if row["values"][0] is not None and row["values"][i] is None:  # failed or not measured: not a pass
                found.append({"candidate": labels[i], "experiment": row["experiment"], "figure": row["label"],
                              "baseline": row["values"][0], "value": None, "ratio": None, "ratio_range": None,
                              "slower_pct": None, "basis": None})
                continue
            if s is None or row["noise"][i] != BEYOND_NOISE or slower_pct(s) <= pct:
                continue
            found.append({"candidate": labels[i], "experiment": row["experiment"], "figure": row["label"],
                          "baseline": row["values"][0], "value": row["values"][i], "ratio": s,
                          "ratio_range": row["speedup_ranges"][i], "slower_pct": slower_pct(s),
                          "basis": row["basis"][i]})
    return found


def regression_line(reg: dict[str, Any], value: Any, pct: float) -> str:
    """REGRESSION train: tokens/s 3.27k -> 2.61k (change): 0.80x [0.76-0.84x] beyond noise, 25.0% slower (> 5%)."""
    from gpt2_lightning.report.formats import fmt_range, fmt_speedup

    if reg["value"] is None:
        return (f"REGRESSION {reg['figure']} {value(reg['baseline'])} -> not measured ({reg['candidate']}): the "
                "candidate failed or skipped it")
    rng = reg["ratio_range"]
    span = f" [{fmt_range(fmt_speedup(rng[0]), fmt_speedup(rng[1]))}]" if rng else ""
    return (f"REGRESSION {reg['figure']} {value(reg['baseline'])} -> {value(reg['value'])} ({reg['candidate']}): "
            f"{fmt_speedup(reg['ratio'])}{span} beyond noise ({reg['basis']}), {reg['slower_pct']:.1f}% slower "
            f"(> {pct:g}%)")
