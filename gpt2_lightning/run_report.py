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
# charts open first and the single-point figures (there for the HParams table) and the plots sit at the end
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


# the settings HParams shows: those that change a figure (not run_dir, which differs in every row, nor every field
# of the model's shape); TensorBoard shows the first five that differ between runs, the rest a click away
_HPARAM_SETTINGS = ("model", "precision", "batch_size", "seq_len", "compile", "profiler", "strategy", "devices",
                    "num_nodes", "steps", "warmup_steps", "init_on", "seed")
_TRAIN_SETTINGS = ("lr", "min_lr", "lr_warmup_steps", "weight_decay", "grad_clip", "accumulate", "max_steps")


def hparams(data: dict[str, Any]) -> dict[str, Any]:
    """The settings and environment a run is filtered and compared by in TensorBoard's HParams tab."""
    config, env = data.get("config", {}), data.get("env", {})
    params = {k: config[k] for k in _HPARAM_SETTINGS if config.get(k) is not None}
    params.update({k: v for k, v in (config.get("gpt") or {}).items() if k in ("n_layer", "n_head", "n_embd")})
    params.update(data=config.get("data") or "synthetic", device=env.get("device_name"), torch=env.get("torch"),
                  lightning=env.get("lightning"), made_by="train.py" if "train" in config else "profile.py")
    params.update({k: v for k, v in (config.get("train") or {}).items() if k in _TRAIN_SETTINGS and v is not None})
    return {k: v for k, v in params.items() if v is not None}


def write_tensorboard_summary(data: dict[str, Any], run_dir: Path, plots: dict[str, str]) -> None:
    """HParams (settings + headline metrics) per experiment; the summary table and plots under 'summary'."""
    import numpy as np
    from PIL import Image

    from gpt2_lightning.experiments import make_logger

    params = hparams(data)
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
        # in the whole_run group too: Time Series shows images among the scalars, and they belong after time/
        writer.add_image(f"{HEADLINE_GROUP}/{name.replace(' ', '_')}", image, global_step=0, dataformats="HWC")
    summary.finalize("success")
