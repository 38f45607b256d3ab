"""LossHistory: the training loss of each optimizer step, kept on the device and read back when fit ends.

Lightning hands ``on_train_batch_end`` the micro-batch's loss divided by ``accumulate_grad_batches`` (that is what
backward sees); summing those over the micro-batches of one optimizer step gives the step's mean loss, undivided.
Under manual optimisation the loss is ``training_step``'s own output, taken as it is.

Values stay device tensors until fit ends (or ``collect()``), so keeping them never makes the host wait for the GPU.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from .step_records import optimizer_step_index


def _loss_of(outputs: Any) -> torch.Tensor | None:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return loss.detach() if isinstance(loss, torch.Tensor) else None


class LossHistory(Callback):
    """Keeps ``(global step, loss)`` for the steps Lightning's logger writes (``(step + 1) % every == 0``) and the
    last step.

    Args:
        every: keep every ``every``-th step, matching ``Trainer(log_every_n_steps=every)``; 1 keeps them all.
        write: at the end of fit, write ``train/loss`` for the kept steps that Lightning's own logging did not
            write (the last step, or all of them when the module logs nothing), so the logger shows every kept value.
        module_logs: the module itself logs ``train/loss`` on the steps Lightning writes.
    """

    def __init__(self, every: int = 1, write: bool = True, module_logs: bool = False) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.every, self.write, self.module_logs = every, write, module_logs
        self.values: list[dict[str, float]] = []
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._sum: torch.Tensor | None = None
        self._step_at_start: int | None = None
        self._last: tuple[int, torch.Tensor] | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._step_at_start is None:
            self._step_at_start = optimizer_step_index(trainer, not pl_module.automatic_optimization)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = _loss_of(outputs)
        if loss is not None:
            self._sum = loss if self._sum is None else self._sum + loss
        if pl_module.automatic_optimization and trainer.global_step == self._step_at_start:
            return  # a micro-batch: the optimizer step is still accumulating
        step = self._step_at_start
        self._step_at_start = None
        value, self._sum = self._sum, None
        if value is None:
            return
        self._last = (step, value)
        if (step + 1) % self.every == 0:
            self._pending.append((step, value))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last is not None and (self._last[0] + 1) % self.every != 0:
            self._pending.append(self._last)  # the last step, off the logging grid
        new = self.collect()
        if not self.write:
            return
        # with module_logs, Lightning has written the steps on the grid; the rest are ours to write
        for v in new:
            if not self.module_logs or (v["step"] + 1) % self.every != 0:
                for logger in trainer.loggers:
                    logger.log_metrics({"train/loss": v["loss"]}, step=v["step"])

    def collect(self) -> list[dict[str, float]]:
        """Read the kept losses back (one transfer); returns those just read (``values`` holds every one so far)."""
        if self._pending:
            losses = torch.stack([v.float() for _, v in self._pending]).tolist()
            new = [{"step": s, "loss": x} for (s, _), x in zip(self._pending, losses)]
            self.values += new
            self._pending = []
            return new
        return []
