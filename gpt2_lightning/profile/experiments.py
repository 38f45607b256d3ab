"""The three experiments of a profile run — init, inference, train — each through Lightning's Trainer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L

from callbacks import PhaseTimingCallback, ThroughputCallback
from callbacks.collectives import CollectiveWaits
from callbacks.delay import PlantedDelay
from callbacks.loss_history import LossHistory
from gpt2_lightning.analysis.ranks import waits_from_traces
from callbacks.stats import summarize
from gpt2_lightning.profile import addons
from gpt2_lightning.profile.diagnosis import diagnosis_expected, profiles_counted_steps
from gpt2_lightning.profile.energy import energy_callback, energy_result, train_max_steps, until_window_done
from gpt2_lightning.profile.experiment_summary import experiment_summary
from gpt2_lightning.profile.interrupts import RunInterrupted
from gpt2_lightning.profile.interrupts import check as check_interrupted
from gpt2_lightning.profile.memory import MemorySnapshotCallback, memory_breakdown
from gpt2_lightning.report.noise import load_average
from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.profilers import make_profiler, name_traces, rank_suffix, top_operators
from gpt2_lightning.profile.quiet import profiler_messages_hidden
from gpt2_lightning.profile.rank_diagnoses import with_rank_diagnoses
from gpt2_lightning.report.tensorboard_logs import make_logger
from gpt2_lightning.profile.workload import flops_fields
from gpt2_lightning.profile.trainers import (free_device_memory, make_datamodule, make_module,
                                     make_progress, make_trainer, module_ranges)


def run_init(cfg: ProfileConfig, run_dir: Path) -> dict[str, Any]:
    """Build the model and its optimizer on the target device, warmup_steps + steps times, each by a new Trainer.

    The first build in a process pays one-off costs (kernels loaded on first use, allocator growth): it is kept
    apart (``cold_init_ms``) from the counted ones. CUDA context creation is timed before any experiment
    (``device_startup_ms``, see ``device_startup_ms()``).
    """
    timing = PhaseTimingCallback(warmup_steps=0, warmup_inits=cfg.warmup_steps)
    progress = make_progress(cfg, "init", per="fit")
    construct: list[float] = []  # the constructor, before any Trainer: a module that builds its layers there
    try:
        for _ in range(cfg.warmup_steps + cfg.steps):
            start = time.perf_counter()  # host clock: a constructor builds on the host (the GPU's part is in init)
            module = make_module(cfg)
            construct.append((time.perf_counter() - start) * 1000.0)
            trainer = make_trainer(cfg, [timing, *progress], limit_train_batches=0, max_epochs=1)
            trainer.fit(module, datamodule=make_datamodule(cfg, 1))  # no batch runs: setup, build, optimizer, stop
            del module, trainer
            free_device_memory()
            check_interrupted()
    except RunInterrupted as e:  # the builds timed before the signal are kept
        e.partial = _init_result(cfg, timing, construct) | {"interrupted": True}
        raise
    logger = make_logger(run_dir, "init")
    for i, rec in enumerate(timing.init_records):
        logger.log_metrics({f"time/{k}_ms": v for k, v in rec.items()}, step=i)
    logger.finalize("success")
    return _init_result(cfg, timing, construct)


def _init_result(cfg: ProfileConfig, timing: PhaseTimingCallback, construct: list[float]) -> dict[str, Any]:
    return {
        "phases": timing.summary("init"),
        "cold_init_ms": timing.init_records[0]["init"] if timing.init_records else None,
        "construct": summarize(construct[cfg.warmup_steps:len(timing.init_records)]),  # the module's constructor
        "per_step": [{"step": i, "warmup": i < cfg.warmup_steps, **{f"{k}_ms": v for k, v in rec.items()},
                      "construct_ms": construct[i] if i < len(construct) else None}
                     for i, rec in enumerate(timing.init_records)],
        "load_avg": load_average(),
    }


def _profiler(cfg: ProfileConfig, run_dir: Path, experiment: str) -> Any:
    if not profiles_counted_steps(cfg):
        return None
    return make_profiler(cfg.profiler, run_dir, experiment, cfg.warmup_steps, cfg.steps)


def _profiler_results(profiler: Any, run_dir: Path, experiment: str, trainer: L.Trainer) -> dict[str, Any]:
    top = top_operators(profiler)
    out: dict[str, Any] = {} if top is None else {"top_ops": top[0], "top_ops_by": top[1]}
    traces = name_traces(run_dir, experiment, trainer.global_rank, trainer.world_size)
    if traces:
        out["traces"] = traces
    return out


def _timed_run(
    cfg: ProfileConfig, run_dir: Path, experiment: str, stage: str, timed_phase: str,
    run: Callable[[L.Trainer, L.LightningModule, L.LightningDataModule], Any], extra_callbacks: tuple = (),
    **trainer_kwargs: Any,
) -> tuple[dict[str, Any], PhaseTimingCallback]:
    """A fresh module and Trainer with the timing callbacks, logger and profiler; ``run`` drives them.

    Interrupted (Ctrl-C, SIGTERM), the steps measured before the signal are summarised all the same, marked
    ``interrupted``, and travel up on the exception (``partial``) to be saved. An add-on (energy window, memory
    snapshot, diagnosis) that fails is recorded as ``{"error": ...}`` with one console line; the figures stand.
    """
    energy = energy_callback(cfg)  # before the timing callback: its reads then fall in uncounted steps
    timing = PhaseTimingCallback(warmup_steps=cfg.warmup_steps, counted_steps=cfg.steps, nvtx=cfg.nvtx)
    throughput = ThroughputCallback(timing, precision=cfg.precision)
    # each rank's time blocked in the all-reduce and its threads (several processes); --threads is set by make_trainer
    waits = CollectiveWaits(cfg.warmup_steps, cfg.steps, timing) if cfg.world_size > 1 else None
    module = make_module(cfg)
    n = cfg.warmup_steps + cfg.steps
    profiler = _profiler(cfg, run_dir, experiment)
    # recorded through the warm-up steps and dumped at the last one's end, before the timing callback's mark
    snapshot = MemorySnapshotCallback(run_dir / f"memory-{experiment}.pickle", cfg.warmup_steps)
    delay = PlantedDelay(cfg.add_delay_ms, rank=cfg.add_delay_rank) if cfg.add_delay_ms else None  # a known slowdown
    # torch.profiler's C++ lines (this run's --profiler pytorch, the diagnosis's extra steps) reach the console
    # only with --verbose (gpt2_lightning.profile.quiet); progress goes to the real console meanwhile
    with profiler_messages_hidden(not cfg.verbose and (cfg.profiler == "pytorch" or not cfg.no_diagnose)) as console:
        callbacks = [c for c in (snapshot if cfg.memory_snapshot else None, energy, timing, throughput, waits, delay,
                                 module_ranges(cfg) if cfg.profiler == "pytorch" and profiles_counted_steps(cfg)
                                 else None,
                                 *extra_callbacks, *make_progress(cfg, experiment, stream=console)) if c is not None]
        trainer = make_trainer(cfg, callbacks, logger=make_logger(run_dir, experiment), profiler=profiler,
                               **trainer_kwargs)
        if profiler is not None and trainer.world_size > 1:  # each rank's files carry its global rank (several nodes)
            profiler.filename = f"profiler-{experiment}{rank_suffix(trainer.global_rank, trainer.world_size)}"
        data = make_datamodule(cfg, n)
        until_window_done(data, energy)  # predict batches go round until the energy window is long enough
        interrupted = None
        started = time.perf_counter()
        try:
            run(trainer, module, data)
        except RunInterrupted as e:
            interrupted = e
        wall_s = time.perf_counter() - started  # the timed Trainer run: what the CPU breakdown's cost is set against
        result = {
            **experiment_summary(timing, throughput, stage, timed_phase, waits, flops=flops_fields(cfg, experiment)),
            **({} if interrupted else _profiler_results(profiler, run_dir, experiment, trainer)),
            **energy_result(energy, experiment, interrupted is not None),
        }
        result["memory_breakdown"] = memory_breakdown(module, trainer.optimizers, result["memory"])
        if delay is not None:
            result["planted_delay"] = delay.summary()
        if snapshot.error is not None:
            result["memory_snapshot"] = addons.failed(experiment, "memory snapshot", snapshot.error)
        elif snapshot.written is not None:
            result["memory_snapshot"] = snapshot.written.name
        if interrupted is not None:  # what was measured before the signal, kept: the run saves it and stops
            interrupted.partial = result | {"interrupted": True}
            raise interrupted
        module.trainer = None  # frees the Trainer and its optimizer state before the diagnosis's Trainer makes its own
        del trainer
        free_device_memory()
        from gpt2_lightning.profile.diagnosis import diagnose_experiment  # it builds Trainers with this module's helpers

        try:
            diagnosis = diagnose_experiment(cfg, run_dir, experiment, stage, module, result, wall_s)
        except RunInterrupted as e:  # during the extra, uncounted steps: every counted step ran, the figures stand
            e.partial = result | {"diagnosis": getattr(e, "diagnosis", None) or {"interrupted": str(e)}}
            raise
        # every rank's own trace, read by it
        diagnosis = with_rank_diagnoses(diagnosis, cfg.world_size, diagnosis_expected(cfg))
        waits_from_traces(result, diagnosis, timed_phase)  # GPU: each rank's wait from its own NCCL kernels
    if diagnosis is not None:
        result["diagnosis"] = diagnosis
    del module
    free_device_memory()
    return result, timing


def run_inference(cfg: ProfileConfig, run_dir: Path) -> dict[str, Any]:
    """Forward passes under torch.inference_mode through ``trainer.predict``, with the naive host-clock figure."""
    result, timing = _timed_run(
        cfg, run_dir, "inference", "predict", "forward",
        # return_predictions=False: keeping every batch's logits would copy them to the host each step
        lambda trainer, module, data: trainer.predict(module, datamodule=data, return_predictions=False),
    )
    naive = timing.naive_summary("predict")
    counted = timing.counted("predict")
    result.update(
        naive_ms=naive["median_ms"],
        naive=naive,
        total_ms=sum(r.phases["forward"] for r in counted),
        naive_total_ms=sum(r.naive_ms for r in counted if r.naive_ms is not None),
    )
    return result


def run_train(cfg: ProfileConfig, run_dir: Path) -> dict[str, Any]:
    """Full training steps through ``trainer.fit``, split into data / forward / backward / optimizer."""
    # the loss of every step stays on the device and is written when fit ends: reading it back per step would make
    # the host wait for the GPU inside the timed steps
    losses = LossHistory(every=1, write=True)
    result, _ = _timed_run(
        cfg, run_dir, "train", "train", "step",
        lambda trainer, module, data: trainer.fit(module, datamodule=data),
        extra_callbacks=(losses,),
        max_steps=train_max_steps(cfg),  # with energy, the energy callback stops fit once its window is done
    )
    result["train_loss"] = losses.values
    return result


EXPERIMENT_RUNNERS: dict[str, Callable[[ProfileConfig, Path], dict[str, Any]]] = {
    "init": run_init,
    "inference": run_inference,
    "train": run_train,
}
