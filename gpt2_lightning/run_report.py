"""Everything a finished (or interrupted) run leaves for people: report.md, PNG plots, TensorBoard summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpt2_lightning.diagnosis_report import markdown_all as diagnosis_markdown
from gpt2_lightning.plots import plot_per_step, plot_phase_breakdown
from gpt2_lightning.report import markdown_summary, render_report
from gpt2_lightning.results import atomic_write_text

REPORT_FILE = "report.md"
PLOTS = {"phase breakdown": "phases.png", "per-step times": "per_step.png"}

# phases whose medians are the headline figures of TensorBoard's HParams tab, per experiment
_HPARAM_METRICS = {
    "init": ("init", "init_model", "init_optimizer"),
    "inference": ("forward",),
    "train": ("data", "forward", "backward", "optimizer", "step"),
}


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
    metrics = {}
    for phase in _HPARAM_METRICS.get(exp, ()):
        stats = result.get("phases", {}).get(phase)
        if stats and stats.get("median_ms") is not None:
            metrics[f"hp/{phase}_ms"] = stats["median_ms"]
    for key in ("naive_ms", "device_startup_ms", "cold_init_ms"):
        if result.get(key) is not None:
            metrics[f"hp/{key}"] = result[key]
    for key, value in (result.get("throughput") or {}).items():
        if isinstance(value, (int, float)):
            metrics[f"hp/{key}"] = value
    energy = result.get("energy") or {}
    for key in ("joules_per_token", "avg_watts"):  # absent when energy is unavailable
        if energy.get(key) is not None:
            metrics[f"hp/{key}"] = energy[key]
    return metrics


def write_tensorboard_summary(data: dict[str, Any], run_dir: Path, plots: dict[str, str]) -> None:
    """HParams (settings + headline metrics) per experiment; the summary table and plots under 'summary'."""
    import numpy as np
    from lightning.pytorch.loggers import TensorBoardLogger
    from PIL import Image

    params = {k: v for k, v in data.get("config", {}).items() if v is not None}
    params["device_name"] = data.get("env", {}).get("device_name")
    params["torch"] = data.get("env", {}).get("torch")
    for exp, result in data.get("experiments", {}).items():
        metrics = headline_metrics(exp, result)
        if not metrics:
            continue
        logger = TensorBoardLogger(str(run_dir), name="tensorboard", version=exp, default_hp_metric=False)
        logger.log_hyperparams(params, metrics)
        logger.finalize("success")
    summary = TensorBoardLogger(str(run_dir), name="tensorboard", version="summary", default_hp_metric=False)
    writer = summary.experiment
    writer.add_text("summary", markdown_summary(data), global_step=0)
    diagnosis = diagnosis_markdown(data)
    if diagnosis:
        writer.add_text("diagnosis", diagnosis, global_step=0)
    for name, file in plots.items():
        image = np.asarray(Image.open(run_dir / file).convert("RGB"))
        writer.add_image(f"plots/{name.replace(' ', '_')}", image, global_step=0, dataformats="HWC")
    summary.finalize("success")
