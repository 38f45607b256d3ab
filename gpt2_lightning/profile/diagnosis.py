"""Every GPU experiment diagnoses itself: a few more steps of the already-built module under torch.profiler, after the
counted ones and never counted, and the verdict made from their trace against the *un-profiled* step.

On a GPU, a second short Trainer run (``fit`` for train, ``predict`` for inference) of one profiler warm-up step and
``--diagnose-steps`` recorded ones reuses the module the timed run built and trained; its trace is deleted once read
unless ``--keep-trace`` or ``--profiler pytorch`` asked for traces. On a CPU, a run with ``--profiler pytorch`` is
diagnosed from the trace Lightning's profiler already wrote over the counted steps (by CPU operator self time), with no
extra steps; other CPU runs get no diagnosis.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import lightning as L

from gpt2_lightning.profile import addons
from gpt2_lightning.analysis.verdict import diagnose
from gpt2_lightning.profile.trainers import make_datamodule, make_trainer, module_ranges, resolve_device
from gpt2_lightning.flops import MATMUL_PARTS
from gpt2_lightning.profile.workload import workload_for
from gpt2_lightning.analysis.module_parts import add_flops
from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.profilers import ProfilerStepCallback, kernel_profiler
from gpt2_lightning.analysis.trace_analysis import TraceError, analyze_trace

PROFILER_WARMUP_STEPS = 1  # traced, then dropped: the tracer's start-up lands in it, not in a recorded step


def diagnosis_trace_path(run_dir: Path, experiment: str, rank: int = 0) -> Path:
    suffix = f"-rank{rank}" if rank else ""
    return run_dir / f"diagnosis-{experiment}{suffix}.pt.trace.json.gz"


def profile_extra_steps(cfg: ProfileConfig, module: L.LightningModule, stage: str, run_dir: Path,
                        experiment: str) -> Path:
    """Run PROFILER_WARMUP_STEPS + cfg.diagnose_steps uncounted steps of ``module`` under torch.profiler; the trace."""
    n = PROFILER_WARMUP_STEPS + cfg.diagnose_steps
    data = make_datamodule(cfg, n)
    # no timing callbacks, no logger, no Lightning profiler: nothing of these steps is counted or logged
    overrides: dict[str, Any] = {"max_steps": n} if stage == "train" else {}
    ranges = module_ranges(cfg)  # which module ran what: the per-module breakdown
    trainer = make_trainer(cfg, [ranges] if ranges else [], enable_progress_bar=False, **overrides)
    path = diagnosis_trace_path(run_dir, experiment, trainer.global_rank)
    cuda = resolve_device(cfg.accelerator).type == "cuda"
    with kernel_profiler(path, cfg.diagnose_steps, cuda=cuda, warmup=PROFILER_WARMUP_STEPS) as prof:
        trainer.callbacks.insert(0, ProfilerStepCallback(prof))
        if stage == "train":
            trainer.fit(module, datamodule=data)
        else:
            trainer.predict(module, datamodule=data, return_predictions=False)
    return path


def _step_ms(result: dict[str, Any], stage: str) -> float | None:
    return (result.get("phases", {}).get("step" if stage == "train" else "forward") or {}).get("median_ms")


# strategies that wrap or shard the module inside fit: a second Trainer cannot fit the same module again
REFIT_UNSAFE_STRATEGIES = ("fsdp", "deepspeed")


def refit_unsafe(strategy: str) -> bool:
    return any(name in str(strategy).lower() for name in REFIT_UNSAFE_STRATEGIES)


def diagnose_experiment(cfg: ProfileConfig, run_dir: Path, experiment: str, stage: str, module: L.LightningModule,
                        result: dict[str, Any]) -> dict[str, Any] | None:
    """The ``diagnosis`` block of one experiment, or None when this run gets none (see the module's docstring).

    A failure here, whatever it is, never costs the experiment its measured figures: it is reported as
    ``{"error": ...}`` with one console line. Under FSDP (or DeepSpeed) the extra steps would re-fit a module that
    the strategy has already sharded: the diagnosis is skipped, and ``{"skipped": why}`` says so.
    """
    cuda = resolve_device(cfg.accelerator).type == "cuda"
    lightning_traces = [run_dir / t for t in result.get("traces", [])]
    if cfg.no_diagnose or (not cuda and not lightning_traces):
        return None
    if cuda and refit_unsafe(cfg.strategy):
        why = (f"--strategy {cfg.strategy} has sharded the module, and the diagnosis's extra steps would fit it again "
               f"in a second Trainer; diagnose with --strategy ddp, or on one device")
        print(f"profile.py: {experiment}: diagnosis skipped: {why}", file=sys.stderr, flush=True)
        return {"skipped": why}
    start = time.perf_counter()
    try:
        if cuda:
            path = profile_extra_steps(cfg, module, stage, run_dir, experiment)
            keep, extra_steps = cfg.keep_trace or cfg.profiler == "pytorch", cfg.diagnose_steps
        else:
            path, keep, extra_steps = lightning_traces[0], True, 0
        analysis = analyze_trace(path)
        part_flops = workload_for(cfg).part_flops_per_token()  # None for a model whose parts the tool does not know
        if part_flops is not None:
            add_flops(analysis["modules"], part_flops, tokens_per_step=cfg.batch_size * cfg.seq_len,
                      training=stage == "train", peak_tflops=(result.get("throughput") or {}).get("peak_tflops"),
                      matmul_parts=MATMUL_PARTS)
        profiled_run = cfg.profiler != "none"  # the counted steps themselves ran under a profiler: slow on the host
        out = diagnose(analysis, step_ms=_step_ms(result, stage), phases=result.get("phases"),
                       host=result.get("host"), mfu_pct=(result.get("throughput") or {}).get("mfu_pct"),
                       step_is_profiled=profiled_run, precision=cfg.precision)
    except Exception as e:  # noqa: BLE001 - any failure: the measured figures still stand
        return addons.failed(experiment, "diagnosis", str(e).splitlines()[0] if isinstance(e, TraceError)
                             else addons.one_line(e))
    out.update(trace=path.name, trace_file=path.name if keep else None, extra_steps=extra_steps,
               extra_wall_s=time.perf_counter() - start)
    if not keep:
        path.unlink(missing_ok=True)
    return out
