"""GPT2LightningModule: GPT-2 trained and run by Lightning's Trainer."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import lightning as L
import torch
from torchmetrics.aggregation import MeanMetric

from gpt2_lightning.config import GPTConfig
from gpt2_lightning.flops import inference_flops_per_token, train_flops_per_token
from gpt2_lightning.model import GPT

INIT_ON_CHOICES = ("device", "cpu")


def _float8_eligible(module: torch.nn.Module, fqn: str) -> bool:
    """Which Linear layers train in float8: every block's, never the tied output head (its logits feed the loss
    directly, and torchtitan keeps it in bf16 too); float8 matmuls need both sizes divisible by 16."""
    if fqn.endswith("lm_head") or not isinstance(module, torch.nn.Linear):
        return False
    return module.in_features % 16 == 0 and module.out_features % 16 == 0


def convert_to_float8(model: torch.nn.Module) -> torch.nn.Module:
    """Swap the eligible Linear layers for torchao's Float8Linear (dynamic tensorwise scaling): PyTorch-native
    float8 training. The weights stay in full precision; each matmul casts its inputs to float8 (e4m3 forward, e5m2
    for gradients). Meant for GPUs of compute capability 8.9+, and for speed with --compile."""
    from torchao.float8 import convert_to_float8_training

    return convert_to_float8_training(model, module_filter_fn=_float8_eligible)


class GPT2LightningModule(L.LightningModule):
    """GPT-2 as a LightningModule.

    The model is built in ``configure_model``, which Lightning calls inside the strategy's device context: parameters
    are allocated directly on the target device (``init_on="device"``). ``init_on="cpu"`` builds on the host and then
    moves the model, the slow way the original study did it, kept so both can be compared.
    """

    def __init__(
        self,
        config: GPTConfig | dict[str, Any],
        learning_rate: float = 6e-4,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        init_on: str = "device",
        compile: bool = False,
        lr_warmup_steps: int = 0,
        lr_decay_steps: int | None = None,
        min_lr: float | None = None,
        float8: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = GPTConfig(**config)
        if init_on not in INIT_ON_CHOICES:
            raise ValueError(f"init_on must be one of {INIT_ON_CHOICES}, got {init_on!r}")
        self.config = config
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.betas = tuple(betas)
        self.init_on = init_on
        self.compile = compile
        self.lr_warmup_steps = lr_warmup_steps
        self.lr_decay_steps = lr_decay_steps
        self.min_lr = learning_rate / 10 if min_lr is None else min_lr  # nanoGPT / Chinchilla: decay to lr / 10
        self.float8 = float8
        # the config as a plain dict, so checkpoints reload and TensorBoard's HParams tab shows every field
        self.save_hyperparameters({"config": dataclasses.asdict(config)} | {
            "learning_rate": learning_rate, "weight_decay": weight_decay, "betas": list(self.betas),
            "init_on": init_on, "compile": compile, "lr_warmup_steps": lr_warmup_steps,
            "lr_decay_steps": lr_decay_steps, "min_lr": self.min_lr, "float8": float8,
        })
        self.model: GPT | None = None
        self.val_loss = MeanMetric()  # mean over the validation batches; its state lives on the module's device
        self._micro_losses: list[torch.Tensor] = []  # this optimizer step's micro-batch losses, when it is logged

    # ------------------------------------------------------------------ building
    def configure_model(self) -> None:
        if self.model is not None:  # Lightning may call this once per trainer.fit/predict/validate
            return
        if self.init_on == "cpu":
            target = torch.get_default_device()  # the strategy's root device, set by Lightning's init context
            with torch.device("cpu"):
                model = GPT(self.config)
            model = model.to(target)
        else:
            model = GPT(self.config)
        if self.float8:
            convert_to_float8(model)
        self.model = model
        if self.compile:
            # compiles lazily at the first call; the timing callback reports that first step apart.
            # dynamic=False: one static graph per shape, as a fixed-shape profile (and training) wants
            self.model.compile(dynamic=False)

    def lr_at(self, step: int) -> float:
        """Learning rate at an optimizer step: linear warm-up, then cosine decay to min_lr over lr_decay_steps."""
        if step < self.lr_warmup_steps:
            return self.learning_rate * (step + 1) / self.lr_warmup_steps
        if self.lr_decay_steps is None:
            return self.learning_rate
        progress = min(1.0, (step - self.lr_warmup_steps) / max(1, self.lr_decay_steps - self.lr_warmup_steps))
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.learning_rate - self.min_lr)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        # weight decay on matmul weights and embeddings (2-D), never on biases or LayerNorm gains
        groups = [  # named: LearningRateMonitor charts them as train/lr/decay and train/lr/no_decay
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": self.weight_decay, "name": "decay"},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "name": "no_decay"},
        ]
        on_cuda = all(p.is_cuda for p in params)
        # fused: one kernel for the whole update instead of several per tensor; CUDA only here
        optimizer = torch.optim.AdamW(groups, lr=self.learning_rate, betas=self.betas, fused=on_cuda or None)
        if self.lr_warmup_steps == 0 and self.lr_decay_steps is None:
            return optimizer  # constant rate: no scheduler to step (profiling)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.lr_at(step) / self.learning_rate)
        # named, so the learning rate sorts beside train/loss in TensorBoard rather than first, as "lr-AdamW"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step", "name": "train/lr"}}

    # ------------------------------------------------------------------ steps
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        assert self.model is not None, "configure_model has not run"
        return self.model(idx)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        idx, targets = batch
        _, loss = self.model(idx, targets)
        self._log_step_loss(loss, batch_idx)
        return loss

    def _log_step_loss(self, loss: torch.Tensor, batch_idx: int) -> None:
        """``train/loss`` of each optimizer step: the mean over its micro-batches, never divided by accumulation.

        Logged only on the steps the logger writes (Lightning writes step j when (j + 1) % log_every_n_steps == 0): a
        value logged on any other step would sit in Lightning's cache and be written later under the wrong step, and
        self.log costs ~1 ms of host time. The value stays a tensor: the logger reads it back when it writes.
        """
        trainer = self._trainer
        if trainer is None or trainer.log_every_n_steps <= 0 or (trainer.global_step + 1) % trainer.log_every_n_steps:
            return  # not a step the logger writes (the global step holds still over an optimizer step's micro-batches)
        self._micro_losses.append(loss.detach())
        if (batch_idx + 1) % trainer.accumulate_grad_batches != 0 and not trainer.is_last_batch:
            return  # more micro-batches to come before the optimizer step
        losses, self._micro_losses = self._micro_losses, []
        step_loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        self.log("train/loss", step_loss, on_step=True, on_epoch=False, prog_bar=False)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        idx, targets = batch
        _, loss = self.model(idx, targets)
        self.val_loss.update(loss)
        return loss

    def on_validation_epoch_end(self) -> None:
        if self.val_loss.update_count == 0:
            return
        loss = self.val_loss.compute()
        self.val_loss.reset()
        # for callbacks and the progress bar; the loggers get them below, at the step they belong to
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, logger=False)
        self.log("val/perplexity", torch.exp(loss), sync_dist=True, logger=False)
        # x: the optimizer steps done (0, 20, 40 ... as results.json and the console say, on after a resume), not
        # Lightning's default for a validation inside fit, the last step's index (19, 39 ...). Not by logging a
        # "step" metric: ModelCheckpoint would name its files after it. The loss is already every rank's (MeanMetric)
        values = {"val/loss": float(loss), "val/perplexity": float(torch.exp(loss))}
        for logger in self.loggers:
            logger.log_metrics(values, step=self.trainer.global_step)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor] | torch.Tensor, batch_idx: int) -> torch.Tensor:
        idx = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.model(idx)  # (B, T, vocab_size) logits

    # ------------------------------------------------------------------ cost model
    def flops_per_batch(self, batch_size: int, seq_len: int, training: bool = True) -> float:
        """Analytic model FLOPs of one batch: a training step (forward + backward) or, with training=False, a forward."""
        per_token = train_flops_per_token if training else inference_flops_per_token
        return per_token(self.config, seq_len) * batch_size * seq_len
