"""Work inside ``fit`` that is not a training step: checkpoint saves and validation runs, timed as windows.

ModelCheckpoint runs after every other callback (Lightning moves checkpoint callbacks last), so the timing callback
alone cannot see where a save ends: ``AfterOtherCallbacks`` is appended behind it and reports back. A save that
began after a batch's end is a ``checkpoint`` window from that end to the companion's hook, and the next step's
``data`` starts after it; a save inside a validation run splits that run into ``validation`` and ``checkpoint``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from .timing import DeviceTimer, Mark

PendingWindow = tuple[str, int, Mark, Mark]  # (kind, the global step it followed, start, end)


class OutsideSteps:
    """Open save and validation marks, and the windows they close into (resolved later, with the steps)."""

    def __init__(self) -> None:
        self.pending: list[PendingWindow] = []
        self.reset()

    def reset(self) -> None:
        self.save_mark: Mark | None = None  # a save began here and no window has claimed it yet
        self.validation_start: Mark | None = None

    def save_started(self, timer: DeviceTimer) -> None:
        if self.save_mark is None:
            self.save_mark = timer.mark()

    def validation_started(self, timer: DeviceTimer) -> None:
        self.validation_start, self.save_mark = timer.mark(), None

    def after_batch_end(self, timer: DeviceTimer, batch_end: Mark | None, step: int) -> Mark | None:
        """Called behind every callback at a batch's end: the end of a save made there (the next data start)."""
        if self.save_mark is None or batch_end is None:
            return None
        end = timer.mark()  # the save, and every callback after the timing's own hook, belong to the checkpoint
        self.pending.append(("checkpoint", step, batch_end, end))
        self.save_mark = None
        return end

    def after_validation_end(self, timer: DeviceTimer, step: int) -> Mark | None:
        """Called behind every callback when validation ends: its end (the next data start), if one was open."""
        start = self.validation_start
        if start is None:
            return None
        end = timer.mark()
        if self.save_mark is not None:
            self.pending += [("validation", step, start, self.save_mark), ("checkpoint", step, self.save_mark, end)]
        else:
            self.pending.append(("validation", step, start, end))
        self.reset()
        return end

    def after_epoch_end(self, timer: DeviceTimer, step: int) -> None:
        """A save at an epoch's (or training's) end, outside any other window."""
        if self.save_mark is not None:
            self.pending.append(("checkpoint", step, self.save_mark, timer.mark()))
            self.save_mark = None


class AfterOtherCallbacks(Callback):
    """Appended behind every other callback (ModelCheckpoint included); tells the timing where their work ends."""

    def __init__(self, timing: Any) -> None:
        self.timing = timing

    @property
    def state_key(self) -> str:
        return f"{type(self).__qualname__}[{id(self.timing)}]"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.timing._after_train_batch_end(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.timing._after_validation_end(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.timing._after_train_epoch_end(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.timing._after_train_end(trainer)
