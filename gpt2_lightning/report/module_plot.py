"""modules.png: forward and backward time of each part of the model, per experiment (the diagnosis's ``modules``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

from gpt2_lightning.analysis.module_parts import short_names  # noqa: E402
from gpt2_lightning.report.formats import fmt_ms  # noqa: E402
from gpt2_lightning.report.plots import save_figure  # noqa: E402

# phases.png's colours: forward, backward, optimizer; grey: outside any module
FORWARD, BACKWARD, OPTIMIZER, OUTSIDE = "#1f77b4", "#ff7f0e", "#2ca02c", "#9e9e9e"
RECOMPUTE, WAITING = "#9467bd", "#d62728"  # activation checkpointing's recompute; a rank waiting for the others


def module_breakdowns(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{experiment: modules block} for the experiments whose diagnosis has a per-module breakdown."""
    out = {}
    for exp, result in data.get("experiments", {}).items():
        modules = (result.get("diagnosis") or {}).get("modules") or {}
        if modules.get("parts") and modules.get("total_ms_per_step"):
            out[exp] = modules
    return out


def _of(modules: dict[str, Any]) -> str:
    if modules.get("scaled"):  # a CPU breakdown in the un-profiled step's time (analysis.phase_scaling)
        return "the un-profiled step (shares from the profiled steps)"
    return "kernel time" if str(modules.get("basis", "")).startswith("kernel") else "host time"


def _segments(rows: list[dict[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """Forward, backward and recompute (activation checkpointing's forward rerun in backward) of each row, so that
    the bar ends at the row's total, the figure its label quotes: they add up to it (total = forward + backward +
    recompute); a results.json from before recompute was in the total has them shrunk in proportion to fit it."""
    out: tuple[list[float], list[float], list[float]] = ([], [], [])
    for r in rows:
        cells = [r.get(k) or 0.0 for k in ("forward_ms", "backward_ms", "recompute_ms")]
        fit = r["total_ms"] / sum(cells) if sum(cells) > r["total_ms"] > 0 else 1.0
        for column, value in zip(out, cells):
            column.append(value * fit)
    return out


def plot_modules(data: dict[str, Any], path: Path, title: str = "") -> Path | None:
    """One panel per experiment: a horizontal bar per part, forward and backward stacked, the largest on top; the
    optimizer and the time outside any module in grey. None when no experiment has a breakdown."""
    breakdowns = module_breakdowns(data)
    if not breakdowns:
        return None
    fig, axes = plt.subplots(1, len(breakdowns), figsize=(6.5 * len(breakdowns), 5.6), squeeze=False)
    for ax, (exp, m) in zip(axes[0], breakdowns.items()):
        rows = [r for r in m["parts"] if r["total_ms"] > 0][::-1]  # matplotlib draws the first row at the bottom
        y = range(len(rows))
        fwd, bwd, rec = _segments(rows)
        ax.barh(y, fwd, color=FORWARD, label="forward")
        if any(bwd):
            ax.barh(y, bwd, left=fwd, color=BACKWARD, label="backward")
        if any(rec):
            ax.barh(y, rec, left=[f + b for f, b in zip(fwd, bwd)], color=RECOMPUTE, label="recompute")
        for name, color in (("optimizer", OPTIMIZER), ("waiting for collectives", WAITING),
                            ("outside any module", OUTSIDE)):
            if any(r["part"] == name for r in rows):
                ax.barh(y, [r["total_ms"] if r["part"] == name else 0.0 for r in rows], color=color, label=name)
        for i, r in enumerate(rows):
            ax.text(r["total_ms"], i, f" {fmt_ms(r['total_ms'])} ({r['pct']:.0f}%)", va="center", fontsize=8)
        names = short_names([r["part"] for r in rows], 40)  # shortened from the left, never alike
        ax.set_yticks(list(y), [names[r["part"]] for r in rows], fontsize=9)
        ax.set_xlabel(f"ms per step of {_of(m)}")
        ax.set_xlim(0, max(r["total_ms"] for r in rows) * 1.35)  # room for the labels
        ax.set_title(f"{exp}: {fmt_ms(m['total_ms_per_step'])} per step, {m['steps']} profiled step(s)"
                     + ("\ntimes scaled to the un-profiled phases" if m.get("scaled") else ""), fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title or "Where each step's time goes, by part of the model", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)
    return path
