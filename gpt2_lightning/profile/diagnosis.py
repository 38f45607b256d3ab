"""Every experiment diagnoses itself: a few more steps of the already-built module under torch.profiler, after the
counted ones and never counted, and the verdict made from their trace against the *un-profiled* step.

A second short Trainer run (``fit`` for train, ``predict`` for inference) of one profiler warm-up step and
``--diagnose-steps`` recorded ones reuses the module the timed run built and trained; its trace is deleted once read
unless ``--keep-trace`` or ``--profiler pytorch`` asked for traces. On a GPU it always runs (kernel time is what the
profiler does not slow). On a CPU the profiler slows the host itself (its operators), so the operator time of the
breakdown's rows is scaled phase by phase to the counted, un-profiled medians, the rest kept as measured
(``analysis.phase_scaling``); it runs by default when its estimated cost is at most ``CPU_BREAKDOWN_MAX_SHARE`` of
the experiment's own Trainer run, always with ``--profiler pytorch`` or ``--keep-trace`` (whose trace, on a CPU, is
these steps' trace: the counted steps are never profiled there), and otherwise says in one line how to get it
(``{"not_run": why}``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import lightning as L

from callbacks.delay import PlantedDelay
from gpt2_lightning.analysis.phase_scaling import scale_cpu_analysis
from gpt2_lightning.profile import addons
from gpt2_lightning.profile.interrupts import RunInterrupted
from gpt2_lightning.analysis.verdict import diagnose
from gpt2_lightning.profile.trainers import make_datamodule, make_trainer, module_ranges, resolve_device
from gpt2_lightning.flops import MATMUL_PARTS
from gpt2_lightning.profile.workload import workload_for
from gpt2_lightning.analysis.module_parts import add_flops
from gpt2_lightning.analysis.part_flops import add_counted_flops, counted_part_flops
from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.profilers import ProfilerStepCallback, kernel_profiler, rank_suffix
from gpt2_lightning.analysis.trace_analysis import TraceError, analyze_trace
from gpt2_lightning.report.profiled import profiler_over_counted_steps

PROFILER_WARMUP_STEPS = 1  # traced, then dropped: the tracer's start-up lands in it, not in a recorded step
# the CPU breakdown by default only when its estimated cost is at most this share of the experiment's Trainer run
CPU_BREAKDOWN_MAX_SHARE = 0.20
# a profiled CPU step against an un-profiled one, for the cost estimate (each run records its own: profiled_slowdown)
CPU_PROFILED_SLOWDOWN = 5.0  # GPT-2 small: 8.33 s against 1.63 s; tiny at T16-T32: 4-9x


def profiles_counted_steps(cfg: ProfileConfig) -> bool:
    """Whether --profiler profiles the counted steps: always but for pytorch on a CPU, where the profiler slows the
    host itself and profiles only the diagnosis's extra, uncounted steps (report.profiled, read from results.json)."""
    on_cpu = resolve_device(cfg.accelerator).type == "cpu"
    return profiler_over_counted_steps(cfg.profiler, on_cpu) != "none"


def diagnosis_asked_for(cfg: ProfileConfig) -> bool:
    """--profiler pytorch or --keep-trace: on a CPU the diagnosis then runs whatever it costs."""
    return cfg.profiler == "pytorch" or cfg.keep_trace


def diagnosis_expected(cfg: ProfileConfig) -> bool:
    """Whether the diagnosis's extra steps run on every rank, from the settings alone (the same on every rank, so
    that all of them gather its rows or none): always on a GPU, on a CPU when asked for (a CPU run of several
    processes never runs it by its own cost estimate). FSDP's skip is the same on every rank and gathered too."""
    if cfg.no_diagnose:
        return False
    return resolve_device(cfg.accelerator).type == "cuda" or diagnosis_asked_for(cfg)


def diagnosis_trace_path(run_dir: Path, experiment: str, rank: int = 0, world_size: int = 1) -> Path:
    """diagnosis-<experiment>[-rankR].pt.trace.json.gz: with several processes each rank writes its own file."""
    return run_dir / f"diagnosis-{experiment}{rank_suffix(rank, world_size)}.pt.trace.json.gz"


def profile_extra_steps(cfg: ProfileConfig, module: L.LightningModule, stage: str, run_dir: Path,
                        experiment: str) -> Path:
    """Run PROFILER_WARMUP_STEPS + cfg.diagnose_steps uncounted steps of ``module`` under torch.profiler; the trace."""
    n = PROFILER_WARMUP_STEPS + cfg.diagnose_steps
    data = make_datamodule(cfg, n)
    # no timing callbacks, no logger, no Lightning profiler: nothing of these steps is counted or logged
    overrides: dict[str, Any] = {"max_steps": n} if stage == "train" else {}
    ranges = module_ranges(cfg)  # which module ran what: the per-module breakdown
    # --add-delay-ms: the planted slowdown is part of the model, in these steps as in the counted ones
    delay = PlantedDelay(cfg.add_delay_ms, rank=cfg.add_delay_rank) if cfg.add_delay_ms else None
    trainer = make_trainer(cfg, [c for c in (ranges, delay) if c is not None], enable_progress_bar=False,
                           **overrides)
    path = diagnosis_trace_path(run_dir, experiment, trainer.global_rank, trainer.world_size)
    cuda = resolve_device(cfg.accelerator).type == "cuda"
    with kernel_profiler(path, cfg.diagnose_steps, cuda=cuda, warmup=PROFILER_WARMUP_STEPS) as prof:
        trainer.callbacks.insert(0, ProfilerStepCallback(prof))
        if stage == "train":
            trainer.fit(module, datamodule=data)
        else:
            trainer.predict(module, datamodule=data, return_predictions=False)
    return path


def _global_rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _step_ms(result: dict[str, Any], stage: str) -> float | None:
    return (result.get("phases", {}).get("step" if stage == "train" else "forward") or {}).get("median_ms")


# strategies that wrap or shard the module inside fit: a second Trainer cannot fit the same module again
REFIT_UNSAFE_STRATEGIES = ("fsdp", "deepspeed")


def refit_unsafe(strategy: str) -> bool:
    return any(name in str(strategy).lower() for name in REFIT_UNSAFE_STRATEGIES)


def cpu_breakdown_cost(cfg: ProfileConfig, result: dict[str, Any], stage: str, wall_s: float | None
                       ) -> tuple[float, float] | None:
    """(estimated seconds, share of the experiment with it) of the CPU breakdown's extra steps; None without figures.

    Estimated from the timed run itself: its Trainer's set-up and tear-down (its wall time less its steps, which a
    second Trainer pays again) plus PROFILER_WARMUP_STEPS + diagnose_steps steps of the median length, each
    CPU_PROFILED_SLOWDOWN times slower under the profiler."""
    step = _step_ms(result, stage)
    if not wall_s or not step:
        return None
    key = "step_ms" if stage == "train" else "forward_ms"
    steps_s = sum(r.get(key) or 0.0 for r in result.get("per_step", [])) / 1000.0
    cost = max(0.0, wall_s - steps_s) + (PROFILER_WARMUP_STEPS + cfg.diagnose_steps) * step / 1000.0 \
        * CPU_PROFILED_SLOWDOWN
    return cost, cost / (wall_s + cost)


def _cpu_not_run(cfg: ProfileConfig, result: dict[str, Any], stage: str, wall_s: float | None) -> dict | None:
    """``{"not_run": why}`` when the CPU breakdown costs more than CPU_BREAKDOWN_MAX_SHARE and was not asked for."""
    if diagnosis_asked_for(cfg):
        return None
    if cfg.world_size > 1:  # each rank would judge its own cost, and ranks that disagree would hang in the extra fit
        return {"not_run": "with several processes the CPU breakdown runs only when asked for (the ranks must all "
                           "run it); --profiler pytorch runs it (the counted steps stay un-profiled)"}
    cost = cpu_breakdown_cost(cfg, result, stage, wall_s)
    if cost is None:
        return {"not_run": "no un-profiled step to scale a breakdown to; --profiler pytorch runs it"}
    seconds, share = cost
    if share <= CPU_BREAKDOWN_MAX_SHARE:
        return None
    return {"not_run": f"the CPU breakdown's {PROFILER_WARMUP_STEPS + cfg.diagnose_steps} extra profiled steps "
                       f"would take ~{seconds:.1f} s, {100 * share:.0f}% of this experiment "
                       f"(run by default under {100 * CPU_BREAKDOWN_MAX_SHARE:.0f}%); --profiler pytorch runs them "
                       f"(the counted steps stay un-profiled)"}


def diagnose_experiment(cfg: ProfileConfig, run_dir: Path, experiment: str, stage: str, module: L.LightningModule,
                        result: dict[str, Any], wall_s: float | None = None) -> dict[str, Any] | None:
    """The ``diagnosis`` block of one experiment, or None with --no-diagnose (see the module's docstring).

    ``wall_s``: the experiment's timed Trainer run, for the CPU breakdown's cost. A failure here, whatever it is,
    never costs the experiment its measured figures: it is reported as ``{"error": ...}`` with one console line.
    Under FSDP (or DeepSpeed) the extra steps would re-fit a module that the strategy has already sharded: the
    diagnosis is skipped, and ``{"skipped": why}`` says so. A stop signal during the extra steps raises
    RunInterrupted with ``diagnosis`` = ``{"interrupted": ...}`` on it (``diagnosis_interrupted``); the partial trace
    is deleted.
    """
    if cfg.no_diagnose:
        return None
    cuda = resolve_device(cfg.accelerator).type == "cuda"
    if refit_unsafe(cfg.strategy):
        why = (f"--strategy {cfg.strategy} has sharded the module, and the diagnosis's extra steps would fit it again "
               f"in a second Trainer; diagnose with --strategy ddp, or on one device")
        print(f"profile.py: {experiment}: diagnosis skipped: {why}", file=sys.stderr, flush=True)
        return {"skipped": why}
    if not cuda:
        not_run = _cpu_not_run(cfg, result, stage, wall_s)
        if not_run is not None:
            return not_run
    start = time.perf_counter()
    path = None
    try:
        path = profile_extra_steps(cfg, module, stage, run_dir, experiment)
        keep = diagnosis_asked_for(cfg)
        analysis = analyze_trace(path)
        if not cuda:  # the profiler slowed the host: the rows in the un-profiled phases' time
            analysis = scale_cpu_analysis(analysis, result.get("phases"), training=stage == "train")
        part_flops = workload_for(cfg).part_flops_per_token()  # None for a model whose parts the tool does not know
        if part_flops is not None:
            add_flops(analysis["modules"], part_flops, tokens_per_step=cfg.batch_size * cfg.seq_len,
                      training=stage == "train", peak_tflops=(result.get("throughput") or {}).get("peak_tflops"),
                      matmul_parts=MATMUL_PARTS)
        elif "parts" in analysis.get("modules", {}):  # any other model: each part's FLOPs as FlopCounterMode counted
            counted = workload_for(cfg).module_flops(experiment)
            if counted is not None:
                add_counted_flops(analysis["modules"],
                                  counted_part_flops(*counted, grouping=analysis["modules"]["grouping"]),
                                  peak_tflops=(result.get("throughput") or {}).get("peak_tflops"))
        # the counted steps themselves ran under a profiler (on a CPU --profiler pytorch profiles only these steps)
        out = diagnose(analysis, step_ms=_step_ms(result, stage), phases=result.get("phases"),
                       host=result.get("host"), mfu_pct=(result.get("throughput") or {}).get("mfu_pct"),
                       step_is_profiled=profiles_counted_steps(cfg), precision=cfg.precision,
                       straggler=result.get("straggler"))
    except RunInterrupted as e:
        if path is None:
            path = diagnosis_trace_path(run_dir, experiment, _global_rank(), cfg.world_size)
        path.unlink(missing_ok=True)  # a trace cut short (if written at all) is not kept
        e.diagnosis = diagnosis_interrupted(e, time.perf_counter() - start)
        raise
    except Exception as e:  # noqa: BLE001 - any failure: the measured figures still stand
        return addons.failed(experiment, "diagnosis", str(e).splitlines()[0] if isinstance(e, TraceError)
                             else addons.one_line(e))
    out.update(trace=path.name, trace_file=path.name if keep else None, extra_steps=cfg.diagnose_steps,
               extra_wall_s=time.perf_counter() - start)
    if not cuda and out.get("profiled_step_ms") and _step_ms(result, stage):
        out["profiled_slowdown"] = out["profiled_step_ms"] / _step_ms(result, stage)
    if not keep:
        path.unlink(missing_ok=True)
    return out


def diagnosis_interrupted(signal: BaseException, after_s: float) -> dict[str, Any]:
    """The ``diagnosis`` of an experiment whose extra, uncounted steps a signal stopped: its figures stand."""
    return {"interrupted": f"{signal} arrived during the diagnosis's extra steps ({after_s:.1f} s in); the "
                           f"experiment's counted steps had all run, and their figures stand"}
