"""A real training run (scripts/train.py): token files, LR schedule, validation, checkpoints, resume, timing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from callbacks import PhaseTimingCallback, ThroughputCallback
from gpt2_lightning.experiments import (
    apply_matmul_precision,
    experiment_summary,
    make_logger,
    make_trainer,
    measured_env,
    resolve_device,
)
from gpt2_lightning.data import TokenFileDataModule
from gpt2_lightning.interrupts import RunInterrupted
from gpt2_lightning.module import GPT2LightningModule
from gpt2_lightning.profile_config import ProfileConfig
from gpt2_lightning.profile_run import RESULTS_FILE, finish
from gpt2_lightning.results import RunResults


class LossHistory(Callback):
    """The training loss every ``every`` steps, kept as device tensors and read back once, at the end."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._pending: list[tuple[int, torch.Tensor]] = []
        self.values: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step - 1  # the optimizer step this batch completed
        if outputs is not None and step % self.every == 0 and (not self._pending or self._pending[-1][0] != step):
            self._pending.append((step, outputs["loss"].detach()))

    def collect(self) -> list[dict[str, float]]:
        self.values += [{"step": s, "loss": float(v)} for s, v in self._pending]
        self._pending = []
        return self.values


class ValHistory(Callback):
    """Validation loss and perplexity at each validation, with the step it was taken at."""

    def __init__(self) -> None:
        self.values: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or "val/loss" not in metrics:
            return
        self.values.append({"step": trainer.global_step, "loss": float(metrics["val/loss"]),
                            "perplexity": float(metrics["val/perplexity"])})


def train(cfg: ProfileConfig, args: argparse.Namespace, run_dir: Path) -> RunResults:
    apply_matmul_precision(cfg)
    device = resolve_device(cfg.accelerator)
    env = measured_env(device)
    data = TokenFileDataModule(args.data, cfg.seq_len, cfg.batch_size, seed=cfg.seed, val_batches=args.val_batches)
    L.seed_everything(cfg.seed, verbose=False)
    module = GPT2LightningModule(
        cfg.gpt_config(), learning_rate=args.lr, weight_decay=args.weight_decay, compile=cfg.compile,
        lr_warmup_steps=args.lr_warmup_steps, lr_decay_steps=args.lr_decay_steps, min_lr=args.min_lr,
    )
    timing = PhaseTimingCallback(warmup_steps=cfg.warmup_steps)
    throughput = ThroughputCallback(timing)
    losses, vals = LossHistory(args.log_every), ValHistory()
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step}", auto_insert_metric_name=False,
                                  every_n_train_steps=args.checkpoint_every, save_top_k=-1, save_last=True)
    trainer = make_trainer(
        cfg, [timing, throughput, losses, vals, checkpoints, LearningRateMonitor(logging_interval="step")],
        logger=make_logger(run_dir, "train"),
        max_steps=args.max_steps,
        accumulate_grad_batches=args.accumulate,
        gradient_clip_val=args.grad_clip or None,
        val_check_interval=args.val_every * args.accumulate,  # counted in batches
        check_val_every_n_epoch=None,  # the training stream has no epochs
        limit_val_batches=args.val_batches,
        log_every_n_steps=args.log_every,
        enable_checkpointing=True,
        enable_progress_bar=cfg.verbose or sys.stderr.isatty(),
        # validation under no_grad, not inference_mode: the torchmetrics state reset inside inference_mode becomes
        # an inference tensor, which the next validation could not update
        inference_mode=False,
    )
    config = cfg.to_dict() | {"train": vars(args), "run_dir": str(run_dir), "gpt": module.hparams["config"]}
    results = RunResults(env=env, config=config)
    results.save(run_dir / RESULTS_FILE)
    try:
        if args.resume is None:
            trainer.validate(module, datamodule=data, verbose=False)  # the loss before any training, at step 0
        trainer.fit(module, datamodule=data, ckpt_path=args.resume)
        results.status = "complete"
    except RunInterrupted as e:
        results.status, results.interrupted_by = "incomplete", str(e)
        raise
    finally:
        summary = experiment_summary(timing, throughput, "train", "step")
        summary.update(train_loss=losses.collect(), val_loss=vals.values, global_step=trainer.global_step,
                       last_checkpoint=checkpoints.last_model_path or None)
        results.experiments["train"] = summary
        if trainer.is_global_zero:
            finish(results, run_dir)
    return results
