"""A real training run (scripts/train.py): token files, LR schedule, validation, checkpoints, resume, timing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from callbacks import PhaseTimingCallback, ThroughputCallback
from callbacks.loss_history import LossHistory
from gpt2_lightning.profile.device_startup import run_device
from gpt2_lightning.profile.environment import measured_env
from gpt2_lightning.profile.experiments import experiment_summary, make_logger
from gpt2_lightning.profile.trainers import apply_process_settings, make_trainer
from gpt2_lightning.data import TokenFileDataModule
from gpt2_lightning.profile.interrupts import RunInterrupted
from gpt2_lightning.module import GPT2LightningModule
from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.workload import flops_fields, workload_for
from gpt2_lightning.profile.run import RESULTS_FILE, finish
from gpt2_lightning.report.results import RunResults


class SavedStep(Callback):
    """The global step of the latest checkpoint written (``last.ckpt`` is rewritten at every save)."""

    def __init__(self) -> None:
        self.step: int | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.step = trainer.global_step


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


def train(cfg: ProfileConfig, args: argparse.Namespace, run_dir: Path, resume: dict | None = None) -> RunResults:
    """Train, validating every --val-every steps and once more after the last step, checkpointing as asked.

    ``resume``: what ``checkpoints.inspect_checkpoint`` read from --resume (its step), when resuming.
    """
    apply_process_settings(cfg)  # before anything runs, so that env records them
    env = measured_env(run_device(cfg))  # this process's own device
    if cfg.module:  # your own module and its data (gpt2_lightning.profile.workload)
        workload = workload_for(cfg)
        module, data = workload.make_module(), workload.user_datamodule(args.max_steps * args.accumulate)
        validates = workload.can_validate()
    else:
        data = TokenFileDataModule(args.data, cfg.seq_len, cfg.batch_size, seed=cfg.seed, val_batches=args.val_batches)
        L.seed_everything(cfg.seed, verbose=False)
        module = GPT2LightningModule(
            cfg.gpt_config(), learning_rate=args.lr, weight_decay=args.weight_decay, compile=cfg.compile,
            lr_warmup_steps=args.lr_warmup_steps, lr_decay_steps=args.lr_decay_steps, min_lr=args.min_lr,
            float8=cfg.precision == "fp8",  # float8 Linear layers under bf16 autocast, as profile.py trains fp8
        )
        validates = True
    timing = PhaseTimingCallback(warmup_steps=cfg.warmup_steps)
    throughput = ThroughputCallback(timing, precision=cfg.precision)  # MFU against this precision's peak (fp8, tf32)
    losses, vals = LossHistory(args.log_every, write=True, module_logs=True), ValHistory()
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step}", auto_insert_metric_name=False,
                                  every_n_train_steps=args.checkpoint_every, save_top_k=-1, save_last=True)
    saved = SavedStep()
    trainer = make_trainer(
        cfg, [timing, throughput, losses, vals, checkpoints, saved, LearningRateMonitor(logging_interval="step")],
        logger=make_logger(run_dir, "train"),
        max_steps=args.max_steps,
        accumulate_grad_batches=args.accumulate,
        gradient_clip_val=args.grad_clip or None,
        val_check_interval=args.val_every * args.accumulate,  # counted in batches
        check_val_every_n_epoch=None,  # the training stream has no epochs
        limit_val_batches=args.val_batches if validates else 0,
        log_every_n_steps=args.log_every,
        enable_checkpointing=True,
        enable_progress_bar=cfg.verbose or sys.stderr.isatty(),
        # validation under no_grad, not inference_mode: the torchmetrics state reset inside inference_mode becomes
        # an inference tensor, which the next validation could not update
        inference_mode=False,
    )
    config = cfg.to_dict() | {"train": vars(args), "run_dir": str(run_dir)} | (
        workload.record() if cfg.module else {"gpt": module.hparams["config"]})
    results = RunResults(env=env, config=config)
    results.save(run_dir / RESULTS_FILE)
    try:
        if args.resume is None and validates:
            trainer.validate(module, datamodule=data, verbose=False)  # the loss before any training, at step 0
        trainer.fit(module, datamodule=data, ckpt_path=args.resume)
        if validates and (not vals.values or vals.values[-1]["step"] != trainer.global_step):
            trainer.validate(module, datamodule=data, verbose=False)  # the loss the run ends with
        results.status = "complete"
    except RunInterrupted as e:
        results.status, results.interrupted_by = "incomplete", str(e)
        e.results = results  # the summary below is filled in before the exception leaves: train.py's message reads it
        raise
    finally:
        summary = experiment_summary(timing, throughput, "train", "step",
                                     flops=flops_fields(cfg, "train", args.accumulate))
        losses.collect()
        summary.update(train_loss=losses.values, val_loss=vals.values,
                       global_step=trainer.global_step, last_checkpoint=checkpoints.last_model_path or None,
                       last_checkpoint_step=saved.step if checkpoints.last_model_path else None)
        if results.interrupted_by is not None:
            summary["interrupted"] = True  # its figures are over the steps timed before the signal
        if timing.fit_summary() is not None:
            summary["fit"] = timing.fit_summary()
        if resume is not None:
            summary["resumed_from"] = {"checkpoint": str(args.resume), "step": resume["step"]}
        results.config["steps"] = summary["phases"]["step"]["n"]  # the steps really timed (a resumed run does fewer)
        results.experiments["train"] = summary
        if trainer.is_global_zero:
            finish(results, run_dir)
    return results
