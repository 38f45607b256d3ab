"""A sweep: one profile per value of one setting, then one table and one figure across the values.

Each point carries its step spread and a noise flag (gpt2_lightning.noise): on a busy machine one point can read
1.71 s against 64 ms for the next, and the table says so instead of drawing it as a trend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpt2_lightning.noise import unstable
from gpt2_lightning.plots import plot_sweep
from gpt2_lightning.report import fmt_ms, fmt_rate, render_table
from gpt2_lightning.results import atomic_write_text, dig

# (column, experiment, path into the experiment's results)
SWEEP_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("train step ms", "train", ("phases", "step", "median_ms")),
    ("train tokens/s", "train", ("throughput", "tokens_per_sec")),
    ("train TFLOP/s", "train", ("throughput", "tflops")),
    ("train MFU %", "train", ("throughput", "mfu_pct")),
    ("inference forward ms", "inference", ("phases", "forward", "median_ms")),
    ("inference tokens/s", "inference", ("throughput", "tokens_per_sec")),
    ("init ms", "init", ("phases", "init", "median_ms")),
    ("peak GiB", "train", ("memory",)),
    ("train J/token", "train", ("energy", "joules_per_token")),
)


def sweep_dir_name(key: str, value: Any) -> str:
    """A directory name per value: letters, digits, '.', '_' and '-' only (batch_size-8, model-gpt2-xl)."""
    return f"{key}-{value}"


def sweep_rows(key: str, runs: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for value, data in runs:
        row: dict[str, Any] = {key: value}
        for column, exp, path in SWEEP_COLUMNS:
            result = data.get("experiments", {}).get(exp, {})
            got = dig(result, path)
            if column == "peak GiB" and isinstance(got, dict):
                got = max(got.values()) if got else None
            row[column] = got
        train = data.get("experiments", {}).get("train", {})
        step = dig(train, ("phases", "step"))
        row["train step p10-p90 ms"] = [step["p10_ms"], step["p90_ms"]] if step and step.get("n") else None
        # a point whose steps spread widely was disturbed: flag it rather than let it bend the curve unnoticed
        row["unstable"] = unstable("train", train) if isinstance(train, dict) and "error" not in train else None
        row["load_avg"] = train.get("load_avg") if isinstance(train, dict) else None
        row["errors"] = {e: r["error"] for e, r in data.get("experiments", {}).items() if "error" in r}
        rows.append(row)
    return rows


def _noise(row: dict[str, Any]) -> str:
    if row.get("unstable") is None:
        return "ok" if row.get("train step p10-p90 ms") else "-"
    load = row.get("load_avg")
    return f"UNSTABLE p90/p10 {row['unstable']:.2f}" + (f", load {load[0]:.2f}" if load else "")


def format_sweep(key: str, rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """One row per value; times carry their own unit (12.5 ms, 1.71 s), so their header names none."""
    columns = [c for c, _, _ in SWEEP_COLUMNS if any(r[c] is not None for r in rows)]
    header = [key, *(c[: -len(" ms")] if c.endswith(" ms") else c for c in columns), "noise", "failed"]

    def cell(column: str, value: Any) -> str:
        if value is None:
            return "-"
        if column.endswith(" ms"):
            return fmt_ms(value)
        if column.endswith("tokens/s"):
            return fmt_rate(value)
        return f"{value:.3g}"

    body = [[str(r[key]), *(cell(c, r[c]) for c in columns), _noise(r), ", ".join(r["errors"]) or "-"]
            for r in rows]
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


def write_sweep(key: str, runs: list[tuple[Any, dict[str, Any]]], parent: Path) -> tuple[str, list[Path]]:
    """sweep.json (the rows), sweep.md (table + figure) and sweep.png in the sweep's parent directory."""
    rows = sweep_rows(key, runs)
    files = [parent / "sweep.json", parent / "sweep.md", parent / "sweep.png"]
    atomic_write_text(files[0], json.dumps({"key": key, "rows": rows}, indent=2) + "\n")
    plot_sweep(key, rows, files[2], title=sweep_title(key, runs))
    warnings = [f"- **{key}={r[key]}: train figures are unstable** (p90/p10 {r['unstable']:.2f}); rerun that point with "
                "more --steps on a quiet machine." for r in rows if r.get("unstable") is not None]
    atomic_write_text(files[1], f"# Sweep over {key}\n\n{sweep_title(key, runs)}\n\n"
                      + ("\n".join(warnings) + "\n\n" if warnings else "")
                      + f"{format_sweep(key, rows, markdown=True)}\n\n![sweep](sweep.png)\n")
    return format_sweep(key, rows), files
