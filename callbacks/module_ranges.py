"""A named range around every submodule's forward, so that a torch.profiler trace can say which module did what.

Each range is named as Lightning's own ``PyTorchProfiler(record_module_names=True)`` names them,
``[pl][module]<module>.<Class>: <qualified name>`` (``[pl][module]torch.nn.modules.linear.Linear:
model.transformer.h.0.attn.c_attn``), so a trace made either way is read alike. This callback exists because
Lightning's registers its hooks when the profiler first starts, before ``configure_model`` has built a model made
there (as this project's is): such a model gets no module ranges from Lightning. Here the hooks go on when the stage
starts, after ``configure_model``, and come off when it ends.

Backward work needs no range of its own: autograd gives each backward operator the sequence number of the forward
operator that created it, and a trace reader links the two (``gpt2_lightning.analysis.module_breakdown``). A range costs a
dispatcher call only while a profiler records; otherwise each hook returns at once. Do not use it on a model run
through ``torch.compile``: the hooks would break its graph.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

PREFIX = "[pl][module]"


def range_name(qualified_name: str, module: torch.nn.Module) -> str:
    cls = type(module)
    return f"{PREFIX}{cls.__module__}.{cls.__name__}: {qualified_name}"


class ModuleRanges:
    """Forward hooks on every submodule of ``root`` (not ``root`` itself); a context manager."""

    def __init__(self, root: torch.nn.Module) -> None:
        self.root = root
        self._handles: list[Any] = []
        self._open: list[Any] = []  # ranges open now, innermost last (forwards nest)

    def _enter(self, name: str) -> Any:
        def pre_hook(module: torch.nn.Module, args: Any) -> None:
            if torch.autograd._profiler_enabled():
                record = torch.profiler.record_function(name)
                record.__enter__()
                self._open.append(record)
            else:
                self._open.append(None)

        return pre_hook

    def _exit(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if self._open:
            record = self._open.pop()
            if record is not None:
                record.__exit__(None, None, None)

    def __enter__(self) -> "ModuleRanges":
        for name, module in self.root.named_modules():
            if name:
                self._handles.append(module.register_forward_pre_hook(self._enter(range_name(name, module))))
                self._handles.append(module.register_forward_hook(self._exit))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        while self._open:  # a forward that raised left its ranges open
            self._exit(self.root, None, None)


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
