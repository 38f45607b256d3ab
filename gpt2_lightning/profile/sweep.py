"""A sweep: one profile per value of one setting, then one table and one figure across the values.

Each point is measured in its own process (gpt2_lightning.profile.repeats), so its memory peak is its own: a process's RSS
high-water mark only rises, and in one process a later, smaller point would read the peak of an earlier, larger one.
Points are listed and drawn in value order (batch 1, 4, 16; models by size), whatever order they were given in.
Every experiment of a point is judged for noise (gpt2_lightning.report.noise): on a busy machine one point can read 1.71 s
against 64 ms for the next, and the table says so instead of drawing it as a trend; a point with too few steps to
judge says so too. A figure that is NaN or infinite in a point's results.json (another tool, an old version, a hand
edit) is not measured: a gap in the table and the figure, never judged.

A sweep stopped by a signal (gpt2_lightning.profile.partial_runs) still gets its table and figure, over the points
that ran: sweep.json says ``"status": "interrupted"``, the point cut short is a row marked so (its figures are
over the steps it timed, and it is not drawn), and the points never run are listed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gpt2_lightning.config import MODEL_NAMES
from gpt2_lightning.report.costs import assumed_vs_measured
from gpt2_lightning.report.noise import MIN_STEPS_TO_JUDGE, spread, timed_stats, unstable
from gpt2_lightning.report.plots import plot_sweep
from gpt2_lightning.report.formats import fmt_ms, fmt_rate, render_table
from gpt2_lightning.report.results import atomic_write_text, dig, finite_or_null, job_rate, world_size

# (column, experiment, path into the experiment's results)
SWEEP_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("train step ms", "train", ("phases", "step", "median_ms")),
    ("train tokens/s", "train", ("throughput", "tokens_per_sec")),
    ("train TFLOP/s", "train", ("throughput", "tflops")),
    ("train MFU %", "train", ("throughput", "mfu_pct")),
    ("inference forward ms", "inference", ("phases", "forward", "median_ms")),
    ("inference tokens/s", "inference", ("throughput", "tokens_per_sec")),
    ("init ms", "init", ("phases", "init", "median_ms")),
    ("train peak RSS GiB (process)", "train", ("memory", "max_rss_gib")),  # CPU: the whole process, libraries too
    ("train peak allocated GiB", "train", ("memory", "max_allocated_gib")),  # GPU: tensors at their peak
    ("train J/token", "train", ("energy", "joules_per_token")),
)
# several processes (--sweep devices=1,2): the job's rate over its slowest rank, and against N x one process
PER_PROCESS_RATES = ("train tokens/s", "inference tokens/s")
GLOBAL_COLUMNS = ("processes", "train global tokens/s", "train scaling efficiency %", "inference global tokens/s")


def sweep_dir_name(key: str, value: Any) -> str:
    """A directory name per value: letters, digits, '.', '_' and '-' only (batch_size-8, model-gpt2-xl)."""
    return f"{key}-{value}"


def value_order(key: str, value: Any) -> tuple[int, Any]:
    """Sort key of a swept value: numbers by size, models from the smallest preset up, anything else as given."""
    if isinstance(value, (int, float)):
        return (0, value)
    if key == "devices" and str(value).isdigit():
        return (0, int(value))
    if key == "model" and value in MODEL_NAMES:
        return (0, MODEL_NAMES.index(value))
    return (1, 0)  # sorted() is stable: the order given


def point_noise(data: dict[str, Any]) -> dict[str, Any]:
    """Per experiment of a point: its spread (p90/p10 of its steps, or of its repeats' medians), whether that is
    unstable, or None when it has too few to judge (under MIN_STEPS_TO_JUDGE, as compare.py)."""
    out = {}
    for exp, result in data.get("experiments", {}).items():
        if not isinstance(result, dict) or "error" in result:
            continue
        stats = timed_stats(exp, result)
        n = (stats or {}).get("n") or 0
        if stats is not None and stats.get("median_ms") is None:  # a non-finite median, read as null
            out[exp] = {"n": n, "spread": None, "unstable": False, "not_measured": True}
            continue
        judged = n >= MIN_STEPS_TO_JUDGE
        out[exp] = {"n": n, "spread": spread(stats) if judged else None,
                    "unstable": judged and unstable(exp, result) is not None, "load_avg": result.get("load_avg")}
    return out


def cut_short(data: dict[str, Any]) -> bool:
    """Whether a point's figures include an experiment stopped by a signal (over fewer steps than asked)."""
    return any(isinstance(r, dict) and r.get("interrupted") for r in data.get("experiments", {}).values())


def point_status(data: dict[str, Any]) -> str:
    """complete, failed, interrupted (figures over the steps timed before the signal), or '2 of 3 repeats ran'."""
    from gpt2_lightning.report.repeat_summary import ran_text, repeats_ran

    if cut_short(data):
        return "interrupted"
    if data.get("repeats") and repeats_ran(data)[0] < repeats_ran(data)[1]:
        return ran_text(data).split(" (")[0]
    return str(data.get("status") or "-")


def sweep_rows(key: str, runs: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for value, data in sorted(runs, key=lambda r: value_order(key, r[0])):
        data = finite_or_null(data)  # NaN / infinite figures are not measured: never shown, judged or drawn
        row: dict[str, Any] = {key: value, "status": point_status(data)}
        for column, exp, path in SWEEP_COLUMNS:
            row[column] = dig(data.get("experiments", {}).get(exp, {}), path)
        train = data.get("experiments", {}).get("train", {})
        step = dig(train, ("phases", "step"))
        span = [(step or {}).get("p10_ms"), (step or {}).get("p90_ms")]
        row["train step p10-p90 ms"] = span if step and step.get("n") and None not in span else None
        row["noise"] = point_noise(data)
        row["errors"] = {e: r["error"] for e, r in data.get("experiments", {}).items() if "error" in r}
        rows.append(row | global_figures(data))
    add_scaling_efficiency(rows)
    return rows


def processes(data: dict[str, Any]) -> int:
    return max((world_size(r) for r in data.get("experiments", {}).values() if isinstance(r, dict)), default=1)


def global_figures(data: dict[str, Any]) -> dict[str, Any]:
    """The job's rates: every rank's tokens over the slowest rank's step (one process: its own rate)."""
    out: dict[str, Any] = {"processes": processes(data)}
    for exp in ("train", "inference"):
        out[f"{exp} global tokens/s"] = job_rate(data.get("experiments", {}).get(exp, {}))
    return out


def add_scaling_efficiency(rows: list[dict[str, Any]]) -> None:
    """scaling efficiency = global rate / (N x one-process rate), where the sweep has a one-process point."""
    one = next((r["train global tokens/s"] for r in rows if r["processes"] == 1 and r["train global tokens/s"]), None)
    for r in rows:
        rate = r["train global tokens/s"]
        r["train scaling efficiency %"] = (100.0 * rate / (r["processes"] * one)
                                           if one and rate is not None and any(x["processes"] > 1 for x in rows)
                                           else None)


def unstable_experiments(row: dict[str, Any]) -> list[tuple[str, float]]:
    return [(exp, x["spread"]) for exp, x in row.get("noise", {}).items() if x["unstable"]]


def noise_cell(row: dict[str, Any]) -> str:
    """ok; UNSTABLE train p90/p10 21.8, load 3.50; or ok: train; not judged: inference (2 steps)."""
    noise = row.get("noise") or {}
    if not noise:
        return "-"
    bad = unstable_experiments(row)
    gone = [exp for exp, x in noise.items() if x.get("not_measured")]
    few = [f"{exp} ({x['n']})" for exp, x in noise.items() if x["spread"] is None and not x.get("not_measured")]
    good = [exp for exp, x in noise.items() if x["spread"] is not None and not x["unstable"]]
    parts = [f"not measured: {', '.join(gone)}"] if gone else []
    if bad:
        loads = [x["load_avg"][0] for x in noise.values() if x["unstable"] and x.get("load_avg")]
        parts.append("UNSTABLE " + ", ".join(f"{exp} p90/p10 {s:.2f}" for exp, s in bad)
                     + (f", load {max(loads):.2f}" if loads else ""))
    if good and (bad or few or gone):
        parts.append(f"ok: {', '.join(good)}")
    if few:
        parts.append(f"not judged (under {MIN_STEPS_TO_JUDGE}): {', '.join(few)}")
    return "; ".join(parts) or "ok"


def _column_format(column: str, values: list[Any]) -> tuple[str, Any]:
    """(header, cell formatter) with one number format for a whole column: TFLOP/s move to the prefix that suits
    the largest value (GFLOP/s on a CPU), and every figure gets the decimals that give the largest three digits."""
    if column == "processes":
        return column, str
    if column.endswith(" %"):
        return column, lambda v: f"{v:.0f}"
    if column.endswith(" ms"):
        return column[: -len(" ms")], fmt_ms  # each time carries its own unit (12.5 ms, 1.71 s)
    if column.endswith("tokens/s"):
        return column, fmt_rate
    numbers = [abs(v) for v in values if isinstance(v, (int, float))]
    scale, header = 1.0, column
    if column.endswith("TFLOP/s") and numbers:
        for prefix, div in (("T", 1.0), ("G", 1e-3), ("M", 1e-6)):
            if max(numbers) >= div or prefix == "M":
                scale, header = 1 / div, column.replace("TFLOP/s", f"{prefix}FLOP/s")
                break
    top = max(numbers, default=0) * scale
    decimals = min(6, max(0, 2 - math.floor(math.log10(top)))) if top > 0 else 0
    return header, lambda v: f"{v * scale:.{decimals}f}"


def format_sweep(key: str, rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """One row per value, in value order; one number format per column; a status column when a point did not end
    complete (a sweep cut short)."""
    several = any(r.get("processes", 1) > 1 for r in rows)
    columns = [c for c, _, _ in SWEEP_COLUMNS if any(r[c] is not None for r in rows)]
    columns += [c for c in GLOBAL_COLUMNS if several and any(r.get(c) is not None for r in rows)]
    formats = [_column_format(c, [r[c] for r in rows]) for c in columns]
    status = any(r.get("status") not in ("complete", "failed") for r in rows)
    # several processes: a per-process column is rank 0's (the global columns are the job's)
    header = [key, *(["status"] if status else []),
              *(f"{h} (rank 0)" if several and h in PER_PROCESS_RATES else h for h, _ in formats), "noise", "failed"]
    body = [[str(r[key]), *([r.get("status", "-")] if status else []),
             *(fmt(r[c]) if r[c] is not None else "-" for c, (_, fmt) in zip(columns, formats)),
             noise_cell(r), ", ".join(r["errors"]) or "-"] for r in rows]
    return render_table(header, body, markdown)


def sweep_title(key: str, runs: list[tuple[Any, dict[str, Any]]]) -> str:
    """sweep over KEY · model · device · precision · experiments, naming only what the sweep holds fixed."""
    c, e = runs[0][1].get("config", {}), runs[0][1].get("env", {})
    parts = [f"sweep over {key}"]
    parts += [str(v) for k, v in (("model", c.get("model")), ("device", e.get("device_name")),
                                  ("precision", c.get("precision"))) if k != key]
    if key not in ("batch_size", "seq_len"):
        parts.append(f"B{c.get('batch_size')}×T{c.get('seq_len')}")
    parts.append(str(c.get("experiments", "train")).replace(",", ", "))
    return " · ".join(parts)


def interrupted_line(key: str, rows: list[dict[str, Any]], stopped: dict[str, Any]) -> str:
    """What a sweep stopped by a signal holds: the points that ran, the one cut short, the ones never run."""
    ran = [str(r[key]) for r in rows if r["status"] != "interrupted"]
    cut = [str(r[key]) for r in rows if r["status"] == "interrupted"]
    text = (f"This sweep was interrupted by {stopped['by']}: {len(ran)} of {stopped['points']} points ran"
            + (f" ({key}={', '.join(ran)})" if ran else ""))
    if cut:
        text += f"; {key}={', '.join(cut)} was cut short (its figures are over the steps it timed; not drawn)"
    if stopped.get("not_run"):
        text += f"; not run: {key}={', '.join(map(str, stopped['not_run']))}"
    return text + "."


def write_sweep(key: str, runs: list[tuple[Any, dict[str, Any]]], parent: Path,
                stopped: dict[str, Any] | None = None) -> tuple[str, list[Path]]:
    """sweep.json (the rows), sweep.md (table + figure) and sweep.png in the sweep's parent directory.

    ``stopped``: a sweep cut short by a signal, ``{"by": "SIGINT", "points": N asked, "not_run": [values]}``."""
    rows = sweep_rows(key, runs)
    files = [parent / "sweep.json", parent / "sweep.md", parent / "sweep.png"]
    record: dict[str, Any] = {"key": key, "status": "interrupted" if stopped else "complete", "rows": rows}
    if stopped:
        record |= {"interrupted_by": stopped["by"], "not_run": stopped.get("not_run", [])}
    atomic_write_text(files[0], json.dumps(finite_or_null(record), indent=2) + "\n")
    drawn = [r for r in rows if r["status"] != "interrupted"]  # a point cut short is not a point of the trend
    if drawn:
        plot_sweep(key, drawn, files[2], title=sweep_title(key, runs) + (
            f" · interrupted: {len(drawn)} of {stopped['points']} points" if stopped else ""))
    else:
        files.pop()
    side_by_side = assumed_vs_measured([data for _, data in runs])  # --project-devices beside a measured N
    warnings = [f"- **{key}={r[key]}: {exp} figures are unstable** (p90/p10 {s:.2f}); rerun that point with more "
                "--steps on a quiet machine." for r in rows for exp, s in unstable_experiments(r)]
    if stopped:
        warnings.insert(0, f"- **{interrupted_line(key, rows, stopped)}**")
    several = ("With several processes the per-process columns are rank 0's; the global columns are every rank's "
               "tokens over the slowest rank's step, and scaling efficiency = global rate / (N x one-process rate). "
               if any(r.get("processes", 1) > 1 for r in rows) else "")
    notes = (several + "Each point was measured in its own process. Memory: on a CPU the peak RSS of that process (the "
             "libraries included), on a GPU the peak allocated by tensors. Noise: every experiment of a point, "
             f"p90/p10 of its steps (of its repeats' medians with --repeat); under {MIN_STEPS_TO_JUDGE} not judged.")
    atomic_write_text(files[1], f"# Sweep over {key}\n\n{sweep_title(key, runs)}\n\n"
                      + ("\n".join(warnings) + "\n\n" if warnings else "")
                      + f"{format_sweep(key, rows, markdown=True)}\n\n"
                      + "".join(f"- {line}.\n" for line in side_by_side) + ("\n" if side_by_side else "")
                      + f"{notes}\n"
                      + ("\n![sweep](sweep.png)\n" if drawn else ""))
    return "\n".join([format_sweep(key, rows), *side_by_side]), files
