"""The run-level results of ``--repeat N``: N measurements, each by a fresh process, summarised as one run.

Each repeat writes its own full results.json (``repeat-<i>/``). The run's own results.json has the usual shape, so
that reports, comparisons, sweeps and the history read it like any run, with one difference in what a STATS record
counts: in a repeated run, ``experiments.<exp>.phases.<phase>`` is a STATS over the repeats' medians, one value per
repeat. Its ``median_ms`` is the median of the repeats' medians, ``p10_ms``-``p90_ms`` and ``min_ms``-``max_ms`` the
spread *between* repeats, ``n`` the number of repeats that measured it. Each such experiment also carries::

    "repeats": {"n": 5, "medians_ms": [the timed phase's, per repeat], "numbers": [1, 2, 3, 4, 5],
                "representative": 3, "waiting_shares": [per repeat, gpt2_lightning.profile.machine]}

Rates (tokens/s, TFLOP/s, MFU) are over the run's median step, as in any run. Figures measured once per repeat that
have no meaningful median across repeats (energy window, diagnosis, host clock, naive timer, first step) are the
*representative* repeat's: the one whose median is nearest the run's. Memory is the highest peak of any repeat.
The top-level ``repeats`` list keeps every repeat's own figures (phases, rates, memory, load, machine) and status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callbacks.stats import summarize
from gpt2_lightning.report.costs import add_costs
from gpt2_lightning.report.noise import TIMED_PHASE

REPEAT_DIR = "repeat-{}"
# what each repeat keeps in the run's own results.json (its full results stay in its repeat-<i>/ directory)
KEPT_PER_REPEAT = ("phases", "throughput", "memory", "load_avg", "machine", "planted_delay", "error", "error_type",
                   "interrupted")
# per-step or per-rank detail that belongs to one process and has no meaning for the run as a whole
DROPPED = ("per_step", "ranks", "cost", "projection")


def _measured(result: Any) -> bool:
    return isinstance(result, dict) and "error" not in result and bool(result.get("phases"))


def merge_experiment(exp: str, numbered: list[tuple[int, dict[str, Any]]], config: dict[str, Any]
                     ) -> dict[str, Any]:
    """One experiment's run-level figures from (repeat number, its result) of the repeats that measured it."""
    results = [r for _, r in numbered]
    timed = TIMED_PHASE.get(exp)
    medians = [r["phases"].get(timed, {}).get("median_ms") for r in results]
    run_stats = summarize([m for m in medians if m is not None])
    run_median = run_stats["median_ms"]
    index = min(range(len(results)), key=lambda i: abs((medians[i] or float("inf")) - (run_median or 0)))
    representative = results[index]
    merged = {k: v for k, v in representative.items() if k not in DROPPED}
    phase_names = dict.fromkeys(p for r in results for p in r.get("phases", {}))
    merged["phases"] = {p: summarize([r["phases"][p]["median_ms"] for r in results
                                      if (r["phases"].get(p) or {}).get("n")]) for p in phase_names}
    throughput = representative.get("throughput")
    if throughput and run_median and medians[index]:
        scale = medians[index] / run_median  # the representative's rates, moved to the run's median step
        merged["throughput"] = {k: v * scale if isinstance(v, (int, float)) else v for k, v in throughput.items()}
    memories = [r.get("memory") or {} for r in results]
    merged["memory"] = {k: max(m[k] for m in memories if m.get(k) is not None)
                        for k in dict.fromkeys(k for m in memories for k in m)}
    loads = [r.get("load_avg") for r in results if r.get("load_avg")]
    merged["load_avg"] = max(loads, key=lambda x: x[0]) if loads else None
    merged["repeats"] = {"n": len(results), "medians_ms": medians, "numbers": [n for n, _ in numbered],
                         "representative": numbered[index][0],
                         # how much of the time each repeat's threads waited for a core (noise.busy_share)
                         "waiting_shares": [(r.get("machine") or {}).get("waiting_share") for r in results]}
    if "cost" in representative or "projection" in representative:
        add_costs(merged, exp, config)  # $ per million tokens and time to train, at the run's own rate
    return merged


def merge_repeats(repeats: list[dict[str, Any] | None], run_dir: Path, asked: int) -> dict[str, Any]:
    """The run's results.json from its repeats' (None for a repeat that wrote nothing), in the order they ran."""
    numbered = [(i + 1, r) for i, r in enumerate(repeats) if r]
    done = [r for _, r in numbered]
    if not done:
        raise ValueError("no repeat wrote any results")
    first = done[0]
    config = dict(first.get("config", {}), run_dir=str(run_dir))
    experiments: dict[str, Any] = {}
    for exp in dict.fromkeys(e for r in done for e in r.get("experiments", {})):
        results = [(n, r["experiments"][exp]) for n, r in numbered if _measured(r.get("experiments", {}).get(exp))]
        whole = [(n, x) for n, x in results if not x.get("interrupted")]
        results = whole or results  # a repeat cut short by a signal counts only when no repeat measured it whole
        if results:
            experiments[exp] = merge_experiment(exp, results, config)
        else:  # no repeat measured it: the first repeat's error says why
            experiments[exp] = next(r["experiments"][exp] for r in done if exp in r.get("experiments", {}))
    statuses = [r.get("status") for r in done]
    interrupted = next((r.get("interrupted_by") for r in done if r.get("interrupted_by")), None)
    if interrupted or len(done) < asked or "incomplete" in statuses:
        status = "incomplete"
    else:
        status = "failed" if "failed" in statuses else "complete"
    return {
        "schema_version": first.get("schema_version", 1), "status": status, "interrupted_by": interrupted,
        "created": first.get("created", ""), "env": first.get("env", {}), "config": config,
        "experiments": experiments,
        "repeats": [{"index": n, "dir": REPEAT_DIR.format(n), "status": r.get("status"), "created": r.get("created"),
                     "experiments": {e: {k: v for k, v in x.items() if k in KEPT_PER_REPEAT}
                                     for e, x in r.get("experiments", {}).items() if isinstance(x, dict)}}
                    for n, r in numbered],
    }


def repeats_ran(data: dict[str, Any]) -> tuple[int, int]:
    """(repeats that ran to their end, repeats asked for) of a repeated run: one stopped by a signal did not."""
    repeats = data.get("repeats") or []
    ran = sum(1 for r in repeats if r.get("status") != "incomplete")
    return ran, max((data.get("config") or {}).get("repeat") or 0, len(repeats))


def ran_text(data: dict[str, Any]) -> str:
    """'5 repeats', or '1 of 5 repeats ran' (and which one was cut short) when the run stopped early."""
    ran, asked = repeats_ran(data)
    if ran == asked:
        return f"{ran} repeats"
    cut = [r["index"] for r in data.get("repeats") or [] if r.get("status") == "incomplete"]
    return f"{ran} of {asked} repeats ran" + (f" (repeat {', '.join(map(str, cut))} was cut short)" if cut else "")


def status_line(data: dict[str, Any]) -> str:
    """report.md's line for a run that is not complete: for a repeated run stopped early, how many repeats ran."""
    status = data.get("status")
    if data.get("repeats") and repeats_ran(data)[0] < repeats_ran(data)[1]:
        by = f", interrupted by {data['interrupted_by']}" if data.get("interrupted_by") else ""
        return f"This run is {status}{by}: {ran_text(data)}; its figures are over what those repeats measured."
    return f"This run is {status}: some experiments did not finish."


def repeat_lines(data: dict[str, Any]) -> list[str]:
    """What a repeated run's figures are, and each experiment's median per repeat (nothing for a single run)."""
    from gpt2_lightning.report.formats import fmt_ms

    repeats = data.get("repeats")
    if not repeats:
        return []
    lines = [f"{ran_text(data)}, each a fresh process ({repeats[0]['dir']}/ ... {repeats[-1]['dir']}/): each "
             "figure is the median of the repeats' medians; p10, p90 and n are between repeats (n counts repeats)."]
    for exp, result in data.get("experiments", {}).items():
        block = result.get("repeats") if isinstance(result, dict) else None
        medians = [m for m in (block or {}).get("medians_ms", []) if m]
        if medians:
            lines.append(f"{exp} per repeat: {', '.join(fmt_ms(m) for m in medians)} (highest / lowest "
                         f"{max(medians) / min(medians):.2f})")
    return lines
