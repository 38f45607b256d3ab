"""Everything a finished (or interrupted) run leaves for people: report.md, PNG plots, TensorBoard summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpt2_lightning.diagnosis_report import markdown_all as diagnosis_markdown
from gpt2_lightning.noise import spread, timed_stats
from gpt2_lightning.plots import plot_per_step, plot_phase_breakdown
from gpt2_lightning.report import markdown_summary, render_report
from gpt2_lightning.atomic_files import atomic_write_text, write_failure

REPORT_FILE = "report.md"
PLOTS = {"phase breakdown": "phases.png", "per-step times": "per_step.png"}

# TensorBoard sorts chart groups by name: "whole_run" comes after memory/, throughput/ and time/, so the per-step
# charts open first and the single-point figures (there for the HParams table) and the plots sit at the end
HEADLINE_GROUP = "whole_run"


def write_plots(data: dict[str, Any], run_dir: Path, failures: list[str] | None = None) -> dict[str, str]:
    """The PNGs made, by name; one that cannot be written (a full disk) is a line in ``failures``, not an error."""
    made = {}
    for (name, file), fn in zip(PLOTS.items(), (plot_phase_breakdown, plot_per_step)):
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
        if isinstance(value, (int, float)):
            metrics[f"{HEADLINE_GROUP}/{key}"] = value
    energy = result.get("energy") or {}
    for key in ("joules_per_token", "avg_watts"):  # absent when energy is unavailable
        if energy.get(key) is not None:
            metrics[f"{HEADLINE_GROUP}/{key}"] = energy[key]
    return metrics


# TensorBoard's HParams tab takes its columns from the first run it finds that declares them ("arbitrarily pick the
# first one", tensorboard/plugins/hparams/backend_context.py), sorts the settings by name and shows the first five of
# them and of the metrics. So every run declares the same settings and metrics, named so that the five that matter
# most sort first (batch_size, device, model, precision, seq_len) and the headline metrics come in this order.
HEADLINE_METRICS = ("median_ms", "tokens_per_sec", "mfu_pct", "p90_over_p10", "joules_per_token", "tflops",
                    "avg_watts")


def hparams(data: dict[str, Any]) -> dict[str, Any]:
    """The settings and environment a run is filtered and compared by in TensorBoard's HParams tab: the same names
    for every run (see above), never run_dir, which would differ in every row."""
    c, e = data.get("config", {}), data.get("env", {})
    gpt = c.get("gpt") or {}
    return {
        "batch_size": int(c.get("batch_size") or 0),
        "device": str(e.get("device_name") or "-"),
        "model": str(c.get("model") or "-"),
        "precision": str(c.get("precision") or "-"),
        "seq_len": int(c.get("seq_len") or 0),
        "shape": f"{gpt.get('n_layer')}L {gpt.get('n_head')}H {gpt.get('n_embd')}d" if gpt else "-",
        "steps": int(c.get("steps") or 0),
        "strategy": str(c.get("strategy") or "-"),
        "tokens": str(c.get("data") or "synthetic"),
        "tool": "train.py" if "train" in c else "profile.py",
        "torch_compile": bool(c.get("compile")),
        "torch_profiler": str(c.get("profiler") or "none"),
        "versions": f"torch {e.get('torch')}, lightning {e.get('lightning')}",
        "where_built": str(c.get("init_on") or "device"),
        "world": f"{c.get('devices', 1)} device(s) x {c.get('num_nodes', 1)} node(s)",
    }


def write_hparams(logger: Any, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """The HParams session of one experiment, declaring every headline metric (this run's values are logged as
    single-point scalars, which is where HParams reads them)."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    declared = {f"{HEADLINE_GROUP}/{m}": 0.0 for m in HEADLINE_METRICS}
    writer = logger.experiment._get_file_writer()  # as Lightning's own log_hyperparams does
    for summary in hparams_summaries(params, declared):
        writer.add_summary(summary)
    logger.log_metrics(metrics, step=0)


def write_tensorboard_summary(data: dict[str, Any], run_dir: Path, plots: dict[str, str]) -> None:
    """HParams (settings + headline metrics) per experiment; the summary table and plots under 'summary'."""
    import numpy as np
    from PIL import Image

    from gpt2_lightning.tensorboard_logs import make_logger

    params = hparams(data)
    for exp, result in data.get("experiments", {}).items():
        metrics = headline_metrics(exp, result)
        if not metrics:
            continue
        logger = make_logger(run_dir, exp)
        write_hparams(logger, params, metrics)
        logger.finalize("success")
    summary = make_logger(run_dir, "summary")
    writer = summary.experiment
    writer.add_text("summary", markdown_summary(data), global_step=0)
    diagnosis = diagnosis_markdown(data)
    if diagnosis:
        writer.add_text("diagnosis", diagnosis, global_step=0)
    for name, file in plots.items():
        image = np.asarray(Image.open(run_dir / file).convert("RGB"))
        # in the whole_run group too: Time Series shows images among the scalars, and they belong after time/
        writer.add_image(f"{HEADLINE_GROUP}/{name.replace(' ', '_')}", image, global_step=0, dataformats="HWC")
    summary.finalize("success")
