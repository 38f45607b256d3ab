"""FLOPs of one step of any LightningModule, counted by torch's FlopCounterMode, never inside a counted step.

The count runs on a throwaway copy of the module: on the meta device first (shapes only: no memory, no arithmetic,
milliseconds even for gpt2-xl), else on a CPU copy with the real batch when an operator of the model has no meta
kernel. A training step is ``training_step`` and the loss's ``backward``; an inference step is ``predict_step`` under
``torch.no_grad``. FlopCounterMode counts matrix multiplications and attention (the work that MFU is about); element-
wise work (norms, activations, the optimizer) is not counted, as in the 6N convention.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from lightning_utilities.core.apply_func import apply_to_collection
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def _loss_of(out: Any) -> torch.Tensor | None:
    """The loss a training_step returned: a tensor, or a dict's "loss" (Lightning's two forms)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and isinstance(out.get("loss"), torch.Tensor):
        return out["loss"]
    return None


def _count(module: torch.nn.Module, batch: Any, training: bool) -> float:
    # attention through the math backend: plain matmuls, which every torch counts (the fused kernels do the same FLOPs)
    with sdpa_kernel(SDPBackend.MATH):
        return _count_steps(module, batch, training)


def _count_steps(module: torch.nn.Module, batch: Any, training: bool) -> float:
    if training:
        module.train()
        with FlopCounterMode(display=False) as counter:
            loss = _loss_of(module.training_step(batch, 0))
            if loss is None:
                raise ValueError("training_step returned no loss tensor")
            loss.backward()
    else:
        module.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module.predict_step(batch, 0)
    return float(counter.get_total_flops())


def count_flops(module: torch.nn.Module, batch: Any, training: bool) -> tuple[float, str]:
    """(FLOPs of one step of ``batch``, where it was counted: "meta" or "cpu"). ``module`` itself is never run: a
    deep copy is. Raises the CPU attempt's error when neither works."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() without a Trainer warns and does nothing: it is not timed here
        try:
            meta = copy.deepcopy(module).to("meta")
            return _count(meta, apply_to_collection(batch, torch.Tensor, lambda t: t.to("meta")), training), "meta"
        except Exception:  # noqa: BLE001 - an operator without a meta kernel, a .item(): count on a CPU copy instead
            pass
        cpu = copy.deepcopy(module).to("cpu")
        return _count(cpu, apply_to_collection(batch, torch.Tensor, lambda t: t.to("cpu")), training), "cpu"
