"""Everything a finished (or interrupted) run leaves for people: report.md, PNG plots, TensorBoard summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpt2_lightning.noise import spread, timed_stats
from gpt2_lightning.plots import plot_per_step, plot_phase_breakdown
from gpt2_lightning.report import markdown_summary, render_report
from gpt2_lightning.results import atomic_write_text

REPORT_FILE = "report.md"
PLOTS = {"phase breakdown": "phases.png", "per-step times": "per_step.png"}

# TensorBoard sorts chart groups by name: "whole_run" comes after memory/, throughput/ and time/, so the per-step
# charts open first and these single-point figures (there for the HParams table) sit at the end
HEADLINE_GROUP = "whole_run"


def write_plots(data: dict[str, Any], run_dir: Path) -> dict[str, str]:
    made = {}
    for (name, file), fn in zip(PLOTS.items(), (plot_phase_breakdown, plot_per_step)):
        if fn(data, run_dir / file) is not None:
            made[name] = file
    return made


def write_report(data: dict[str, Any], run_dir: Path) -> Path:
    plots = write_plots(data, run_dir)
    path = run_dir / REPORT_FILE
    atomic_write_text(path, render_report(data, plots))
    write_tensorboard_summary(data, run_dir, plots)
    return path


def headline_metrics(exp: str, result: dict[str, Any]) -> dict[str, float]:
    """The few figures HParams shows per experiment: the median of its timed unit (build, forward pass, step), its
    spread (p90/p10: a noisy run shows here), and its rates. One tag each for every experiment, so a column of the
    HParams table means the same thing in every row."""
    metrics = {}
    stats = timed_stats(exp, result)
    if stats and stats.get("median_ms") is not None:
        metrics[f"{HEADLINE_GROUP}/median_ms"] = stats["median_ms"]
    if spread(stats) is not None:
        metrics[f"{HEADLINE_GROUP}/p90_over_p10"] = spread(stats)
    for key, value in (result.get("throughput") or {}).items():
        if value is not None:
            metrics[f"{HEADLINE_GROUP}/{key}"] = value
    return metrics


def write_tensorboard_summary(data: dict[str, Any], run_dir: Path, plots: dict[str, str]) -> None:
    """HParams (settings + headline metrics) per experiment; the summary table and plots under 'summary'."""
    import numpy as np
    from PIL import Image

    from gpt2_lightning.experiments import make_logger

    params = {k: v for k, v in data.get("config", {}).items() if v is not None}
    params["device_name"] = data.get("env", {}).get("device_name")
    params["torch"] = data.get("env", {}).get("torch")
    for exp, result in data.get("experiments", {}).items():
        metrics = headline_metrics(exp, result)
        if not metrics:
            continue
        logger = make_logger(run_dir, exp)
        logger.log_hyperparams(params, metrics)
        logger.finalize("success")
    summary = make_logger(run_dir, "summary")
    writer = summary.experiment
    writer.add_text("summary", markdown_summary(data), global_step=0)
    for name, file in plots.items():
        image = np.asarray(Image.open(run_dir / file).convert("RGB"))
        writer.add_image(f"plots/{name.replace(' ', '_')}", image, global_step=0, dataformats="HWC")
    summary.finalize("success")
