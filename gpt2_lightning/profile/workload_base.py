"""``Workload``: what the study needs of a model (see ``workload``), with the parts every kind shares: FLOPs counted by
FlopCounterMode on a probe, tokens by the callbacks' rule, the repeated layers, the record for results.json."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from callbacks.failures import one_line
from callbacks.step_records import count_batch
from gpt2_lightning.profile.flop_count import count_flops_by_module, module_classes
from gpt2_lightning.profile.settings import ProfileConfig

COUNTED = "FlopCounterMode"


class Workload:
    """What every workload gives; see the module's docstring."""

    name: str = ""  # for titles, tables and labels: the preset's name or the module's class
    class_name: str = ""

    def __init__(self, cfg: ProfileConfig) -> None:
        self.cfg = cfg
        self._flops: dict[str, Any] | None = None
        self._module_flops: dict[str, dict[str, float]] = {}  # by experiment: {module path: FLOPs, submodules in}

    # ---------------------------------------------------------------- building
    def make_module(self) -> L.LightningModule:
        raise NotImplementedError

    def make_datamodule(self, num_batches: int) -> L.LightningDataModule:
        raise NotImplementedError

    def cannot_run(self, experiment: str) -> str | None:
        """Why this model cannot run ``experiment`` (init, inference, train), or None."""
        return None

    # ---------------------------------------------------------------- what the figures need
    def num_params(self) -> int:
        raise NotImplementedError

    def probe(self) -> L.LightningModule:
        """A module never timed: for counting (parameters, FLOPs, layers)."""
        raise NotImplementedError

    def probe_batch(self) -> Any:
        """One training batch, as the data gives it (on the host)."""
        raise NotImplementedError

    def batch_shape(self) -> tuple[int, int]:
        """(batch size, sequence length) of a batch: its first tensor's first two dimensions."""
        count = count_batch(self.probe_batch())
        shape = count.shape or (0,)
        return shape[0], (shape[1] if len(shape) > 1 else 1)

    def measured_flops(self) -> dict[str, Any]:
        """FLOPs of one training step (forward + backward) and one inference forward of a probe batch, counted once
        by FlopCounterMode on a throwaway copy; ``error`` says why a count is missing."""
        if self._flops is None:
            out: dict[str, Any] = {"batch_shape": list(self.batch_shape())}
            batch = self.probe_batch()
            for key, training in (("train", True), ("inference", False)):
                if self.cannot_run(key) is not None:
                    out[key] = None
                    continue
                try:
                    out[key], out["counted_on"], self._module_flops[key] = count_flops_by_module(self.probe(), batch,
                                                                                                 training)
                except Exception as e:  # noqa: BLE001 - a model that cannot be counted: TFLOP/s unknown, said why
                    out[key] = None
                    out[f"{key}_error"] = one_line(e)
            self._flops = out
        return self._flops

    def flops_used(self) -> dict[str, Any]:
        """The FLOPs per step that TFLOP/s and MFU use, by experiment, and their source (``flops_source``)."""
        m = self.measured_flops()
        return {"train": m.get("train"), "inference": m.get("inference"), "source": COUNTED,
                "measured": {k: m.get(k) for k in ("train", "inference")}}

    def repeated_layers(self) -> list[dict[str, Any]]:
        """Every ModuleList of two or more modules of one class: ``{"name", "count", "class"}``, outermost first."""
        return repeated_layers(self.probe())

    def part_flops_per_token(self) -> dict[str, float] | None:
        """The formula's FLOPs per token by model part, where the workload knows its parts (GPT-2); else None."""
        return None

    def module_flops(self, experiment: str) -> tuple[dict[str, float], dict[str, str]] | None:
        """({module path: FLOPs of one step, submodules included}, {module path: class}) from the count that
        ``measured_flops`` made, for the breakdown's per-part GFLOP/s; None when it has none."""
        self.measured_flops()
        counts = self._module_flops.get("train" if experiment == "train" else "inference")
        return (counts, module_classes(self.probe())) if counts else None

    def record(self) -> dict[str, Any]:
        """What results.json's ``config`` adds for this model."""
        b, t = self.batch_shape()
        return {"model": self.name, "model_class": self.class_name, "num_params": self.num_params(),
                "batch_size": b, "seq_len": t, "repeated_layers": self.repeated_layers(),
                "flops_counted": self.measured_flops()}  # counted here, before any experiment is timed

    def attach_flops(self, module: L.LightningModule) -> None:
        """Give ``module`` the ``flops_per_batch`` that ThroughputCallback reads, unless its class has its own. Only
        when both counts are known: a step without a count must read null, never 0 FLOP/s."""
        used = self.flops_used()
        if not callable(getattr(type(module), "flops_per_batch", None)) and None not in (used["train"],
                                                                                        used["inference"]):
            b, t = self.batch_shape()
            object.__setattr__(module, "flops_per_batch", FlopsPerBatch(used["train"], used["inference"], b * t))


class FlopsPerBatch:
    """``flops_per_batch(batch_size, seq_len, training)`` from the counted steps, scaled by a batch's B x T where its
    shape differs from the counted one (a short last batch). A plain object: a module holding it still pickles
    (ddp_spawn)."""

    def __init__(self, train: float, inference: float, counted_tokens: int) -> None:
        self.train, self.inference, self.counted_tokens = train, inference, counted_tokens

    def __call__(self, batch_size: int, seq_len: int, training: bool = True) -> float:
        return (self.train if training else self.inference) * batch_size * seq_len / self.counted_tokens


def repeated_layers(module: torch.nn.Module) -> list[dict[str, Any]]:
    out = []
    for name, child in module.named_modules():
        if isinstance(child, torch.nn.ModuleList) and len(child) >= 2:
            kinds = {type(m) for m in child}
            if len(kinds) == 1:
                out.append({"name": name, "count": len(child), "class": next(iter(kinds)).__name__})
    return out
