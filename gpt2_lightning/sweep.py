"""A sweep: one profile per value of one setting, then one table and one figure across the values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        row["errors"] = {e: r["error"] for e, r in data.get("experiments", {}).items() if "error" in r}
        rows.append(row)
    return rows


def format_sweep(key: str, rows: list[dict[str, Any]], markdown: bool = False) -> str:
    columns = [c for c, _, _ in SWEEP_COLUMNS if any(r[c] is not None for r in rows)]
    header = [key, *columns, "failed"]

    def cell(column: str, value: Any) -> str:
        if value is None:
            return "-"
        if column.endswith(" ms"):
            return fmt_ms(value)
        if column.endswith("tokens/s"):
            return fmt_rate(value)
        return f"{value:.3g}"

    body = [[str(r[key]), *(cell(c, r[c]) for c in columns), ", ".join(r["errors"]) or "-"] for r in rows]
    return render_table(header, body, markdown)


def write_sweep(key: str, runs: list[tuple[Any, dict[str, Any]]], parent: Path) -> tuple[str, list[Path]]:
    """sweep.json (the rows), sweep.md (table + figure) and sweep.png in the sweep's parent directory."""
    rows = sweep_rows(key, runs)
    files = [parent / "sweep.json", parent / "sweep.md", parent / "sweep.png"]
    atomic_write_text(files[0], json.dumps({"key": key, "rows": rows}, indent=2) + "\n")
    plot_sweep(key, rows, files[2])
    atomic_write_text(files[1], f"# Sweep over {key}\n\n{format_sweep(key, rows, markdown=True)}\n\n![sweep](sweep.png)\n")
    return format_sweep(key, rows), files
