"""Everything a finished (or interrupted) run leaves for people: report.md, PNG plots, TensorBoard summary
(tensorboard_summary.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpt2_lightning.report.atomic_files import atomic_write_text, write_failure
from gpt2_lightning.report.module_plot import plot_modules
from gpt2_lightning.report.plots import plot_per_step, plot_phase_breakdown
from gpt2_lightning.report.render import render_report
from gpt2_lightning.report.tensorboard_summary import write_tensorboard_summary
from gpt2_lightning.report.training import LOSS_PLOT, plot_loss

REPORT_FILE = "report.md"
PLOTS = {"phase breakdown": "phases.png", "per-step times": "per_step.png", "loss curve": LOSS_PLOT,
         "module breakdown": "modules.png"}


def write_plots(data: dict[str, Any], run_dir: Path, failures: list[str] | None = None) -> dict[str, str]:
    """The PNGs made, by name; one that cannot be written (a full disk) is a line in ``failures``, not an error."""
    made = {}
    for (name, file), fn in zip(PLOTS.items(), (plot_phase_breakdown, plot_per_step, plot_loss, plot_modules)):
        try:
            if fn(data, run_dir / file) is not None:
                made[name] = file
        except OSError as e:
            if failures is None:
                raise
            failures.append(write_failure(run_dir / file, e))
    return made


def write_report(data: dict[str, Any], run_dir: Path) -> list[str]:
    """report.md, the PNGs and the TensorBoard summary, each written whole or not at all (atomic_files). What cannot
    be written (a full disk) is one line each in the list returned; results.json, written first, holds every figure."""
    failures: list[str] = []
    plots = write_plots(data, run_dir, failures)
    path = run_dir / REPORT_FILE
    try:
        atomic_write_text(path, render_report(data, plots))
    except OSError as e:
        failures.append(write_failure(path, e))
    try:
        write_tensorboard_summary(data, run_dir, plots)
    except OSError as e:
        failures.append(write_failure(e.filename or run_dir / "summary", e))
    return failures
