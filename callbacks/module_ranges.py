"""A named range around every submodule's forward, so that a torch.profiler trace can say which module did what.

Each range is named as Lightning's own ``PyTorchProfiler(record_module_names=True)`` names them,
``[pl][module]<module>.<Class>: <qualified name>`` (``[pl][module]torch.nn.modules.linear.Linear:
model.transformer.h.0.attn.c_attn``), so a trace made either way is read alike. This callback exists because
Lightning's registers its hooks when the profiler first starts, before ``configure_model`` has built a model made
there (as this project's is): such a model gets no module ranges from Lightning. Here the hooks go on when the stage
starts, after ``configure_model``, and come off when it ends.

Backward work needs no range of its own: autograd gives each backward operator the sequence number of the forward
operator that created it, and a trace reader links the two (``gpt2_lightning.analysis.module_breakdown``). Under
activation checkpointing a module's forward rerun inside backward gets its range again, inside the backward operator
that asked for it: the reader counts that as the module's recompute. A range costs a dispatcher call only while a
profiler records; otherwise each hook returns at once. Do not use it on a model run through ``torch.compile``: the
hooks would break its graph. ``ModuleRanges`` (in ``module_hooks``, no Lightning) puts the same ranges on any model.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from .module_hooks import ModuleRanges


class ModuleRangesCallback(Callback):
    """Puts ``ModuleRanges`` on the LightningModule for each fit / validate / predict stage."""

    def __init__(self) -> None:
        self._ranges: ModuleRanges | None = None

    def _on(self, pl_module: L.LightningModule) -> None:
        self._off()
        self._ranges = ModuleRanges(pl_module).__enter__()

    def _off(self) -> None:
        if self._ranges is not None:
            self._ranges.__exit__(None, None, None)
            self._ranges = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on(pl_module)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on(pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._off()

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._off()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._off()
