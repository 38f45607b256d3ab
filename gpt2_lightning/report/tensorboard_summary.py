"""What a finished run adds to TensorBoard: the HParams table (settings and headline figures per experiment) and,
under ``<run>/summary``, the summary table, the diagnosis and the plots.

TensorBoard's HParams tab takes its columns from the first run it finds that declares them ("arbitrarily pick the
first one", tensorboard/plugins/hparams/backend_context.py), sorts the settings by name and ticks the first five of
them and of the metrics. So every run declares the same settings and metrics, named so that the five that matter
most sort first (batch, device, experiment, model, precision) and the headline metrics come in the order a reader
wants them. Its Trial ID column is 10em wide (about 13 characters): each trial is named so that the part that tells
rows apart comes first (``10:43:54 train 2026-11-30``, ``my-run train``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gpt2_lightning.report.diagnosis import markdown_all as diagnosis_markdown
from gpt2_lightning.report.noise import spread, timed_stats
from gpt2_lightning.report.profiled import counted_steps_profiler
from gpt2_lightning.report.render import markdown_summary
from gpt2_lightning.report.tensorboard_files import EVENTS, flops_metric

# TensorBoard sorts chart groups by name: "whole_run" comes after throughput/ and time/, so the per-step charts open
# first and the single-point figures (there for the HParams table) and the plots sit at the end
HEADLINE_GROUP = "whole_run"
# each column holds one kind of figure: a build, a forward pass and a step are never one column
TIMED_METRIC = {"init": "build_ms", "inference": "forward_ms", "train": "step_ms"}
HEADLINE_METRICS = ("step_ms", "forward_ms", "build_ms", "tokens_per_sec", "p90_over_p10", "mfu_pct", "tflops",
                    "gflops", "val_loss", "max_allocated_gib", "max_rss_gib", "joules_per_token", "tokens_per_kwh", "avg_watts",
                    "idle_watts")
_TIMESTAMP = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})")  # profile_config's default run name


def headline_metrics(exp: str, result: dict[str, Any]) -> dict[str, float]:
    """The few figures HParams shows per experiment: the median of its timed unit in its own column (build_ms,
    forward_ms or step_ms), its spread (p90/p10: a noisy run shows here), its rates, peak memory by what was
    measured (device allocator or process RSS), the last validation loss (train.py) and energy."""
    metrics: dict[str, float] = {}
    stats = timed_stats(exp, result)
    if stats and stats.get("median_ms") is not None and exp in TIMED_METRIC:
        metrics[TIMED_METRIC[exp]] = stats["median_ms"]
    if spread(stats) is not None:
        metrics["p90_over_p10"] = spread(stats)
    figures = {**(result.get("throughput") or {}), **(result.get("memory") or {}), **(result.get("energy") or {})}
    if result.get("val_loss"):
        figures["val_loss"] = result["val_loss"][-1]["loss"]
    for key in HEADLINE_METRICS:
        if key not in metrics and isinstance(figures.get(key), (int, float)) and not isinstance(figures[key], bool):
            metrics[key] = figures[key]
    if "tflops" in metrics and flops_metric("tflops", metrics["tflops"]) != "tflops":
        metrics["gflops"] = metrics.pop("tflops") * 1000  # the console's unit: GFLOP/s below 1 TFLOP/s
    return {f"{HEADLINE_GROUP}/{k}": v for k, v in metrics.items()}


def run_name(data: dict[str, Any]) -> str:
    """The run's directory under --out (``first``, ``cpu-vs-gpu/cpu``, ``20261130-104354``)."""
    c = data.get("config", {})
    run_dir = Path(str(c.get("run_dir") or "-"))
    try:
        return str(run_dir.relative_to(Path(str(c.get("out")))))
    except ValueError:
        return run_dir.name


TRIAL_ID_CHARS = 15  # what HParams' Trial ID column shows before it cuts with "..." (headless Chromium, 1400 px)
SHORT_EXPERIMENT = {"init": "init", "inference": "infer", "train": "train"}


def trial_name(data: dict[str, Any], exp: str) -> str:
    """HParams' Trial ID: unique per run and experiment, at most TRIAL_ID_CHARS characters so that it reads whole (the
    experiment and the run's full name have columns of their own): a timestamp-named run reads ``10:43:54 train``
    (its date is in the ``run`` column), a named one ``my-run train``; a longer name keeps its start and its end
    (``cpu-v...u infer``)."""
    name = run_name(data)
    short = SHORT_EXPERIMENT.get(exp, exp)
    match = _TIMESTAMP.fullmatch(name)
    if match:
        name = ":".join(match.groups()[3:])
    room = TRIAL_ID_CHARS - len(short) - 1
    if len(name) > room:
        head = (room - 1) // 2
        name = name[:head] + "~" + name[len(name) - (room - 1 - head):]
    return f"{name} {short}"


def experiment_label(data: dict[str, Any], exp: str) -> str:
    """The ``experiment`` column (ticked by default), in the Trial ID's words (``init``, ``infer``, ``train``): a run
    whose figures are not the code's alone says so there, ``train·prof`` when a profiler ran over the counted steps
    (not ``--profiler pytorch`` on a CPU: it profiles only the diagnosis's extra steps), ``train·delay`` with a planted
    delay, ``infer·prof·delay`` with both. The column is as narrow as the Trial ID's: ``inference (profiled)`` read
    ``inference (profil...`` there, while ``infer·prof·delay`` reads whole (headless Chromium, TensorBoard 2.21)."""
    c = data.get("config", {})
    marks = [m for m, on in (("prof", counted_steps_profiler(data) != "none"), ("delay", bool(c.get("add_delay_ms"))))
             if on]
    return "·".join([SHORT_EXPERIMENT.get(exp, exp), *marks])


def device_label(env: dict[str, Any]) -> str:
    """The ``device`` column, its telling part first: ``CPU Intel Xeon Processor``, ``H100 80GB HBM3``."""
    name = str(env.get("device_name") or "-")
    for noise in ("(R)", "(TM)", "NVIDIA "):
        name = name.replace(noise, "")
    name = " ".join(name.split())
    return f"CPU {name}" if env.get("device_type") == "cpu" else name


def hparams(data: dict[str, Any], exp: str = "-") -> dict[str, Any]:
    """The settings and environment a run is filtered and compared by in TensorBoard's HParams tab: the same names
    for every run (see above). ``run`` (regex-filtered) names the run; the five ticked by default are batch,
    device, experiment, model, precision."""
    c, e = data.get("config", {}), data.get("env", {})
    gpt = c.get("gpt") or {}
    return {
        "batch": f"B{c.get('batch_size')}×T{c.get('seq_len')}",
        "device": device_label(e),
        "experiment": experiment_label(data, exp),
        "model": str(c.get("model") or "-"),
        "precision": str(c.get("precision") or "-"),
        "run": run_name(data),
        "seq_len": int(c.get("seq_len") or 0),
        "sequences_per_batch": int(c.get("batch_size") or 0),
        "shape": f"{gpt.get('n_layer')}L {gpt.get('n_head')}H {gpt.get('n_embd')}d" if gpt else (
            f"{c.get('num_params')} parameters, args {c.get('module_args') or {}}" if c.get("module") else "-"),
        "steps": int(c.get("steps") or 0),
        "strategy": str(c.get("strategy") or "-"),
        "tokens": str(c.get("data") or c.get("datamodule") or ("the module's own" if c.get("module") else "synthetic")),
        "tool": "train.py" if "train" in c else "profile.py",
        "torch_compile": bool(c.get("compile")),
        "torch_profiler": str(c.get("profiler") or "none"),
        "versions": f"torch {e.get('torch')}, lightning {e.get('lightning')}",
        "where_built": str(c.get("init_on") or "device"),
        "world": f"{c.get('devices', 1)} device(s) x {c.get('num_nodes', 1)} node(s)",
    }


def write_hparams(logger: Any, params: dict[str, Any], metrics: dict[str, float], trial: str) -> None:
    """The HParams session of one experiment: the experiment (every setting and headline metric declared), the
    session, named ``trial`` (its group name: HParams' Trial ID), and its end; torch's ``hparams`` summaries, with
    the group name set on the session (TensorBoard's own helper for it needs TensorFlow). This run's values are logged
    as single-point scalars, which is where HParams reads them."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    declared = {f"{HEADLINE_GROUP}/{m}": 0.0 for m in HEADLINE_METRICS}
    experiment, start, end = hparams_summaries(params, declared)
    plugin = start.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(plugin.content)
    data.session_start_info.group_name = trial
    plugin.content = data.SerializeToString()
    writer = logger.experiment._get_file_writer()  # as Lightning's own log_hyperparams does
    for summary in (experiment, start, end):
        writer.add_summary(summary)
    logger.log_metrics(metrics, step=0)


SUMMARY_SUFFIX = ".summary"  # the end of the name of the event files written here, so that a rewrite replaces them


def forget_summary(folder: Path) -> None:
    """Remove the summary this function wrote earlier into ``folder``: a ``--repeat`` run rewrites its summary after
    every repeat, and TensorBoard would otherwise show one HParams session and headline point per rewrite."""
    for old in Path(folder).glob(f"{EVENTS}*{SUMMARY_SUFFIX}"):
        old.unlink(missing_ok=True)


def write_tensorboard_summary(data: dict[str, Any], run_dir: Path, plots: dict[str, str]) -> None:
    """HParams (settings + headline metrics) per experiment; the summary table and plots under 'summary'."""
    import numpy as np
    from PIL import Image

    from gpt2_lightning.report.tensorboard_logs import make_logger

    for exp, result in data.get("experiments", {}).items():
        metrics = headline_metrics(exp, result)
        if not metrics:
            continue
        forget_summary(run_dir / exp)
        logger = make_logger(run_dir, exp, suffix=SUMMARY_SUFFIX)
        write_hparams(logger, hparams(data, exp), metrics, trial_name(data, exp))
        logger.finalize("success")
    forget_summary(run_dir / "summary")
    summary = make_logger(run_dir, "summary", suffix=SUMMARY_SUFFIX)
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
