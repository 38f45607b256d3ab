"""The regression gate: ``compare.py BASELINE CANDIDATE --fail-if-slower PCT``, for CI.

A candidate regresses when it is slower than the baseline by more than PCT *and* the difference is beyond noise
(gpt2_lightning.report.judgement), on time per token or on tokens/s of inference or training, or when it lacks a gated
figure the baseline has (the experiment failed or was not run). "Slower by PCT" is time: a
token takes PCT% longer, so tokens/s falls to 1/(1 + PCT/100) of the baseline's (a 20% slowdown is tokens/s x 0.83).
Model builds (init) are not gated: they process no tokens. With several processes the whole job is gated too: its
rate (every rank's tokens over the slowest rank's time) and the slowest rank's step (or forward pass), so that one
slow rank fails the gate though rank 0's own figures did not move.

**Never green when it cannot judge.** A gated figure slower than PCT whose difference could not be judged (too few
repeats, a repeat that failed, too few steps, a busy runner: judgement.judge's ``why``) is not a pass: exit 2, one
line per figure saying why and what to rerun. When the batch shapes differ the times are not judged (different work)
and the rates gate alone.

Exit codes: 0 no regression; 3 at least one (one line each: experiment, figure, both values, the ratio and its
range); 2 the comparison cannot gate: a gated figure slower than PCT that could not be judged; the same run given
twice; settings that change the work differ (model, precision, batch shape, device) without
``--allow-different-settings``; or PCT is below what this machine class tells apart (``GATE_FLOOR_PCT``) without
``--allow-below-floor``.
"""

from __future__ import annotations

from typing import Any

from gpt2_lightning.report.judgement import (BUSY, NO_SPREAD, SMALL_EFFECT, STEPS, TOO_FEW_REPEATS, TOO_FEW_STEPS,
                                             WORK_DIFFERS)
from gpt2_lightning.report.noise import BEYOND_NOISE, MIN_STEPS_TO_JUDGE

EXIT_REGRESSION = 3  # compare.py --fail-if-slower: a regression beyond noise and the threshold
EXIT_CANNOT_GATE = 2  # a gated figure slower than the threshold that could not be judged; the same run twice
# rank 0's (or the one process's) rates, then the whole job's with several processes (results.compare's keys)
GATED = ("inference: time per token", "inference: tokens/s", "train: time per token", "train: tokens/s",
         "inference: tokens/s, whole job", "train: tokens/s, whole job", "inference: forward pass, slowest rank",
         "train: step, slowest rank")
WHOLE_JOB_ROWS = GATED[4:]
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


def rate_change_pct(speedup: float) -> float:
    """The rate's change, in %, for an oriented speed-up: -88.7 when a token takes 787.4% longer (``slower_pct``)."""
    return (speedup - 1) * 100


def slowdown_text(item: dict[str, Any], pct: float) -> str:
    """How much slower, in the gate's terms (time): "+787.4%" for a time row; for a rate, which cannot fall by more
    than 100%, "time per token +787.4%, tokens/s -88.7%"; then "(slower by more than PCT%)"."""
    change = f"+{item['slower_pct']:.1f}%"
    if item.get("rate"):
        change = f"time per token {change}, tokens/s {item['rate_change_pct']:+.1f}%"
    return f"{change} (slower by more than {pct:g}%)"


def _figures(row: dict[str, Any], s: float | None) -> dict[str, Any]:
    """The slowdown's figures an item carries (results.json-style, for --json too): ``slower_pct`` (how much longer
    a token, or a step, takes), ``rate_change_pct`` (the rate's change) and whether the row is a rate."""
    return {"slower_pct": None if s is None else slower_pct(s), "rate_change_pct": None if s is None else
            rate_change_pct(s), "rate": not row.get("lower_is_better", True)}


def regressions(rows: list[dict[str, Any]], labels: list[str], pct: float) -> list[dict[str, Any]]:
    """Every gated figure of every candidate (runs after the first) that is slower by more than ``pct`` and beyond
    noise."""
    found = []
    for row in rows:
        if row["key"] not in GATED:
            continue
        for i in range(1, len(labels)):
            s = row["speedups"][i]
            if (row["values"][0] is not None and row["values"][i] is None and not row["ran"][i]
                    and row["key"] not in WHOLE_JOB_ROWS):
                # failed or not run: not a pass (a run that measured it but holds no finite figure cannot be
                # gated: unjudged; the whole job's rows: a run of repeats keeps no ranks, and its rank-0 rows catch
                # a failed experiment)
                found.append({"candidate": labels[i], "experiment": row["experiment"], "figure": row["label"],
                              "baseline": row["values"][0], "value": None, "ratio": None, "ratio_range": None,
                              **_figures(row, None), "basis": None})
                continue
            if s is None or row["noise"][i] != BEYOND_NOISE or slower_pct(s) <= pct:
                continue
            found.append({"candidate": labels[i], "experiment": row["experiment"], "figure": row["label"],
                          "baseline": row["values"][0], "value": row["values"][i], "ratio": s,
                          "ratio_range": row["speedup_ranges"][i], **_figures(row, s), "basis": row["basis"][i]})
    return found


def regression_line(reg: dict[str, Any], value: Any, pct: float) -> str:
    """REGRESSION train: tokens/s 3.27k -> 2.61k (change): 0.80x [0.76-0.84x] beyond noise (repeats): time per token
    +25.3%, tokens/s -20.2% (slower by more than 5%)."""
    from gpt2_lightning.report.formats import fmt_range, fmt_speedup

    if reg["value"] is None:
        return (f"REGRESSION {reg['figure']} {value(reg['baseline'])} -> not measured ({reg['candidate']}): the "
                "candidate failed or skipped it")
    rng = reg["ratio_range"]
    span = f" [{fmt_range(fmt_speedup(rng[0]), fmt_speedup(rng[1]))}]" if rng else ""
    return (f"REGRESSION {reg['figure']} {value(reg['baseline'])} -> {value(reg['value'])} ({reg['candidate']}): "
            f"{fmt_speedup(reg['ratio'])}{span} beyond noise ({reg['basis']}): {slowdown_text(reg, pct)}")


def _repeats_line(runs: list[dict[str, Any]], labels: list[str], exp: str, counts: tuple[int, int] | None,
                  i: int) -> str:
    """Which run's repeats failed: "change: 3 of 5 repeats measured train" ('' when every asked repeat did)."""
    out = []
    for k, j in ((0, 0), (1, i)):
        asked = runs[j].get("config", {}).get("repeat") or 0
        got = counts[k] if counts else 0
        if isinstance(asked, int) and asked > 1 and got < asked:
            out.append(f"{labels[j]}: {got} of {asked} repeats measured {exp}, the others failed (its report.md says "
                       "why)")
    return "; ".join(out)


def advice(why: str | None, runs: list[dict[str, Any]], labels: list[str], exp: str,
           counts: tuple[int, int] | None, i: int) -> str:
    """What to rerun so that the figure can be judged."""
    if why == TOO_FEW_REPEATS:
        failed = _repeats_line(runs, labels, exp, counts, i)
        return "rerun both with --repeat 5" + (f" ({failed})" if failed else "")
    if why == TOO_FEW_STEPS:
        steps = [str(runs[j].get("config", {}).get("steps", "?")) for j in (0, i)]
        return (f"rerun both with more --steps (at least {MIN_STEPS_TO_JUDGE}; these ran {' and '.join(steps)}) and "
                "--repeat 5")
    if why == BUSY:
        return "rerun on a quiet runner (nothing else running, --threads 1): these times measured the other work"
    if why == NO_SPREAD:
        return "rerun both with --repeat 5 (or more --steps)"
    if why == SMALL_EFFECT:
        return "single runs tell only larger differences apart: rerun both with --repeat 5"
    return "rerun both with --repeat 5"


def unjudged(rows: list[dict[str, Any]], labels: list[str], pct: float, runs: list[dict[str, Any]]
             ) -> list[dict[str, Any]]:
    """Every gated figure of every candidate that is slower by more than ``pct`` but was not judged: the gate
    cannot call it a pass (exit 2). Times of different work (batch shapes differ) are left to the rates."""
    found = []
    for row in rows:
        if row["key"] not in GATED:
            continue
        for i in range(1, len(labels)):
            s, base, value = row["speedups"][i], row["values"][0], row["values"][i]
            item = {"candidate": labels[i], "experiment": row["experiment"], "figure": row["label"],
                    "baseline": base, "value": value, "ratio": s, **_figures(row, s)}
            if (base is None) != (value is None) and row["key"] not in WHOLE_JOB_ROWS:
                who = 0 if base is None else i  # measured the experiment, but this figure is missing or NaN
                if row["ran"][who]:
                    found.append(item | {"why": None, "note": f"{labels[who]}'s figure is missing or not a finite "
                                         "number in its results.json", "advice": f"rerun {labels[who]}"})
                continue
            held = row["why"][i] == SMALL_EFFECT and row["basis"][i] == STEPS  # too small for single runs to tell
            if s is None or (row["noise"][i] is not None and not held) or slower_pct(s) <= pct \
                    or row["why"][i] == WORK_DIFFERS:
                continue
            found.append(item | {"why": row["why"][i], "note": row["notes"][i] or "no judgement",
                                 "advice": advice(row["why"][i], runs, labels, row["experiment"], row["counts"][i],
                                                  i)})
    return found


def unjudged_line(item: dict[str, Any], value: Any, pct: float) -> str:
    """CANNOT GATE train: tokens/s 1.28k -> 853.3 (change): 0.67x: time per token +50.0%, tokens/s -33.3% (slower by
    more than 20%) but not judged (...): rerun ..."""
    from gpt2_lightning.report.formats import fmt_speedup

    head = f"CANNOT GATE {item['figure']} {value(item['baseline'])} -> {value(item['value'])} ({item['candidate']}): "
    if item["ratio"] is None:
        return head + f"not judged ({item['note']}): {item['advice']}"
    return (head + f"{fmt_speedup(item['ratio'])}: {slowdown_text(item, pct)} but not judged ({item['note']}): "
            f"{item['advice']}")
