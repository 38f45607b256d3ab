"""Timing a Trainer's set-up: from its ``setup`` hook to the start of the stage, with the module's
``configure_model`` (``init_model``) and ``configure_optimizers`` (``init_optimizer``) timed inside it."""

from __future__ import annotations

import functools
from typing import Any

import lightning as L

from .timing import DeviceTimer, Mark

_WRAPPED = (("configure_model", "init_model"), ("configure_optimizers", "init_optimizer"))


class InitTimer:
    def __init__(self) -> None:
        self._timer: DeviceTimer | None = None
        self._marks: dict[str, Mark] = {}
        self._open = False

    def start(self, timer: DeviceTimer, pl_module: L.LightningModule) -> None:
        """Mark the start of init and wrap the module's two build hooks (on the instance, until ``unwrap``)."""
        self._timer = timer
        self._marks = {"init_start": timer.mark()}
        self._open = True
        for hook, phase in _WRAPPED:
            self._wrap(pl_module, hook, phase)

    def _wrap(self, pl_module: L.LightningModule, hook: str, phase: str) -> None:
        original = getattr(pl_module, hook)

        @functools.wraps(original)  # keeps Lightning's is_overridden() answer unchanged
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._marks[f"{phase}_start"] = self._timer.mark()
            try:
                return original(*args, **kwargs)
            finally:
                self._marks[f"{phase}_end"] = self._timer.mark()

        setattr(pl_module, hook, timed)

    def close(self) -> dict[str, float] | None:
        """End init now; its phases in ms (resolved at once: a stage is starting, not a step), or None if not open."""
        if not self._open:
            return None
        self._open = False
        m = self._marks
        m["init_end"] = self._timer.mark()
        names = [p for p in ("init", "init_model", "init_optimizer") if f"{p}_start" in m and f"{p}_end" in m]
        values = self._timer.resolve((m[f"{p}_start"], m[f"{p}_end"]) for p in names)
        return dict(zip(names, values))

    @staticmethod
    def unwrap(pl_module: L.LightningModule) -> None:
        for hook, _ in _WRAPPED:
            pl_module.__dict__.pop(hook, None)  # back to the class's own method
