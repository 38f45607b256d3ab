"""What every experiment is built from: the device, the module, the data, the Trainer and its progress line.

Shared by the experiments (``experiments``), the diagnosis's extra steps (``diagnosis_run``) and train.py, so that
none of them imports another's run code.
"""

from __future__ import annotations

import gc
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar

from callbacks.collectives import TorchThreads
from callbacks.module_ranges import ModuleRangesCallback
from callbacks.progress import ProgressCallback, StepProgressBar
from gpt2_lightning.profile.interrupts import RaiseOnSignal
from gpt2_lightning.profile.settings import ProfileConfig


def resolve_device(accelerator: str) -> torch.device:
    """The root device a Trainer with this accelerator runs on (device 0 of several)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def apply_matmul_precision(cfg: ProfileConfig) -> None:
    """fp32 runs use exact FP32 matmuls unless tf32 was asked for: the figures and MFU's peak depend on it."""
    torch.set_float32_matmul_precision("high" if cfg.precision == "tf32" else "highest")


def apply_process_settings(cfg: ProfileConfig) -> None:
    """The process-wide settings of a run, before anything runs (so that env records them): the matmul precision,
    and --threads."""
    apply_matmul_precision(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)


def make_module(cfg: ProfileConfig) -> L.LightningModule:
    """A fresh module of the run's workload (the built-in GPT-2 or --module), seeded: same seed, same weights."""
    from gpt2_lightning.profile.workload import workload_for

    return workload_for(cfg).make_module()


def make_datamodule(cfg: ProfileConfig, num_batches: int) -> L.LightningDataModule:
    """``num_batches`` batches for every process of the run's workload (``Workload.make_datamodule``)."""
    from gpt2_lightning.profile.workload import workload_for

    return workload_for(cfg).make_datamodule(num_batches)


def module_ranges(cfg: ProfileConfig) -> ModuleRangesCallback | None:
    """Module ranges for a profiled trace's per-module breakdown; none on a compiled model (hooks break its graph)."""
    return None if cfg.compile else ModuleRangesCallback()


def make_trainer(cfg: ProfileConfig, callbacks: list[Any], logger: Any = False, **overrides: Any) -> L.Trainer:
    kwargs: dict[str, Any] = dict(
        accelerator=cfg.accelerator,
        devices=cfg.trainer_devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cfg.trainer_precision,
        # --threads set again when the Trainer sets up, after Lightning's launcher set its own (every rank)
        callbacks=[*callbacks, *([TorchThreads(cfg.threads)] if cfg.threads is not None else []), RaiseOnSignal()],
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=cfg.verbose,
        enable_progress_bar=cfg.verbose,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        # the module's self.log("train/loss") off: writing it reads the loss back from the device, a wait inside the
        # timed steps (a profile keeps every step's loss with LossHistory instead; train.py sets its own interval)
        log_every_n_steps=0,
        enable_autolog_hparams=False,  # the run's own settings and headline metrics are logged when it ends
    )
    kwargs.update(overrides)
    if kwargs["enable_progress_bar"] and not any(isinstance(c, ProgressBar) for c in kwargs["callbacks"]):
        # counted in optimizer steps: the stock bar reads "Epoch 0/-2 ... v_num: rain" on a step-based run
        kwargs["callbacks"] = [*kwargs["callbacks"], StepProgressBar()]
    return L.Trainer(**kwargs)


def make_progress(cfg: ProfileConfig, experiment: str, per: str = "batch", stream: Any = None) -> list[Any]:
    """Progress with an ETA for an experiment that turns out to take more than ~10 s (nothing for a short one).

    With --verbose Lightning's own progress bar shows instead. Host clock only: never a device wait in a step."""
    if cfg.verbose:
        return []
    unit = {"init": "build", "inference": "pass"}.get(experiment, "step")
    return [ProgressCallback(cfg.warmup_steps + cfg.steps, warmup=cfg.warmup_steps, label=experiment, unit=unit,
                             per=per, stream=stream)]


def free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
