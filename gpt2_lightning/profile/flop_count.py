"""FLOPs of one step of any LightningModule, counted by torch's FlopCounterMode, never inside a counted step.

The count runs on a throwaway copy of the module: on the meta device first (shapes only: no memory, no arithmetic,
milliseconds even for gpt2-xl), else on a CPU copy with the real batch when an operator of the model has no meta
kernel. A training step is ``training_step`` and the loss's ``backward``; an inference step is ``predict_step`` under
``torch.no_grad``. FlopCounterMode counts matrix multiplications and attention (the work that MFU is about); element-
wise work (norms, activations, the optimizer) is not counted, as in the 6N convention.

The same count gives each module's FLOPs (FlopCounterMode counts per module, each module's including its
submodules'): the step runs inside a call of the LightningModule itself, so that every submodule is named by its path
from it, as the trace's module ranges name it (``module_flops``; the per-module breakdown's GFLOP/s for any model).
"""

from __future__ import annotations

import copy
import sys
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


def _count(module: torch.nn.Module, batch: Any, training: bool, as_root: bool) -> tuple[float, dict[str, float]]:
    # attention through the math backend: plain matmuls, which every torch counts (the fused kernels do the same FLOPs)
    with sdpa_kernel(SDPBackend.MATH):
        return _count_steps(module, batch, training, as_root)


def _as_root(module: torch.nn.Module, step: Any) -> Any:
    """``step()`` run inside a call of ``module`` itself: FlopCounterMode then names every submodule
    ``<Class>.<path from module>`` (called directly from a LightningModule's step, a submodule would be named by its
    class alone, and two Linear layers would read alike). The module's own forward is back for any ``self(...)``."""

    def forward(*_: Any) -> Any:
        del module.forward  # the instance attribute set below: the class's forward again from here on
        return step()

    module.forward = forward  # a throwaway copy (count_flops_by_module's): the instance attribute is never seen elsewhere
    try:
        return module()
    finally:
        module.__dict__.pop("forward", None)


def _count_steps(module: torch.nn.Module, batch: Any, training: bool, as_root: bool
                 ) -> tuple[float, dict[str, float]]:
    def run(step: Any) -> Any:
        return _as_root(module, step) if as_root else step()

    if training:
        module.train()
        with FlopCounterMode(display=False) as counter:
            loss = _loss_of(run(lambda: module.training_step(batch, 0)))
            if loss is None:
                raise ValueError("training_step returned no loss tensor")
            loss.backward()
    else:
        module.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            run(lambda: module.predict_step(batch, 0))
    if not as_root:  # the names are the first-called modules' classes: no paths to give
        return float(counter.get_total_flops()), {}
    root = type(module).__name__ + "."
    by_module = {name[len(root):]: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()
                 if name.startswith(root)}
    return float(counter.get_total_flops()), by_module


def count_flops_by_module(module: torch.nn.Module, batch: Any, training: bool
                          ) -> tuple[float, str, dict[str, float]]:
    """(FLOPs of one step of ``batch``, where it was counted: "meta" or "cpu", each submodule's FLOPs, its
    submodules' included: {path: FLOPs}, paths as ``module.named_modules()`` gives them (the submodules that ran and
    did counted work)). ``module`` itself is never run: a deep copy is. Raises the CPU attempt's error when neither
    works."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() without a Trainer warns and does nothing: it is not timed here
        error: Exception | None = None
        # on the meta device first, else on a CPU copy (an operator without a meta kernel, a .item()); each inside a
        # call of the module (per-module counts), else as the step runs by itself (a module whose own call cannot
        # take no arguments, e.g. a forward pre-hook of its own): the step's count never depends on the names
        for device in ("meta", "cpu"):
            if device == "cpu":  # a real step of the model on the host: as long as one, minutes for a large model
                print(f"counting the FLOPs of one {'training step' if training else 'forward pass'} on a CPU copy "
                      f"(the meta device could not run it: {_first_line(error)}) ...", file=sys.stderr, flush=True)
            for as_root in (True, False):
                try:
                    copied = copy.deepcopy(module).to(device)
                    total, by_module = _count(copied, apply_to_collection(batch, torch.Tensor, lambda t: t.to(device)),
                                              training, as_root)
                    return total, device, by_module
                except Exception as e:  # noqa: BLE001 - the next way; the last (CPU, plain) error when none works
                    error = e
        raise error  # type: ignore[misc] - four attempts ran, each set it


def _first_line(e: Exception | None) -> str:
    text = str(e).strip() if e is not None else ""
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def module_classes(module: torch.nn.Module) -> dict[str, str]:
    """{path: class name} of every submodule, as the trace's module ranges name them."""
    return {name: type(m).__name__ for name, m in module.named_modules() if name}
