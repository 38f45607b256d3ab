"""The workload: what the study (profile.py, train.py) needs of a model, and nothing about GPT-2 itself.

A workload builds a fresh LightningModule and the data for it, names the model and counts its parameters for titles,
counts a batch's tokens (the rule of ``callbacks.step_records.count_batch``: a batch's attention_mask when it has
one), gives the FLOPs of a training step and of an inference forward (counted by FlopCounterMode, ``flop_count``),
and lists the model's repeated layers (a ModuleList of one class, like ``h.N`` or ``layers.N``) for the per-block view.
Two kinds: ``GPT2Workload`` (the built-in presets, which also quote 6N + 12LdT) and ``ModuleWorkload``
(``--module PKG.MOD:CLASS``). The experiments ask ``workload_for(cfg)`` and never which kind they hold.
"""

from __future__ import annotations

import json
from typing import Any

from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.workload_base import COUNTED, Workload, repeated_layers
from gpt2_lightning.profile.workload_gpt2 import GPT2_FORMULA, GPT2Workload
from gpt2_lightning.profile.workload_module import ModuleWorkload

__all__ = ["COUNTED", "GPT2_FORMULA", "GPT2Workload", "ModuleWorkload", "Workload", "flops_fields", "repeated_layers",
           "workload_for"]


def flops_fields(cfg: ProfileConfig, experiment: str, batches_per_step: int = 1) -> dict[str, Any]:
    """THR's FLOPs keys for an experiment: ``flops_source`` (which count TFLOP/s and MFU use), ``flops_per_step``
    (that count for one step: ``batches_per_step`` batches of the probe's shape) and ``flops_counted_per_step``
    (FlopCounterMode's, shown beside the formula for GPT-2); ``flops_note`` says why a count is missing."""
    key = "train" if experiment == "train" else "inference"
    workload = workload_for(cfg)
    used = workload.flops_used()

    def per_step(value: float | None) -> float | None:
        return None if value is None else value * batches_per_step

    out = {"flops_source": used["source"] if used[key] is not None else None, "flops_per_step": per_step(used[key]),
           "flops_counted_per_step": per_step(used["measured"].get(key))}
    error = workload.measured_flops().get(f"{key}_error")
    if error:
        out["flops_note"] = f"FlopCounterMode could not count this model's step: {error}"
    return out


_cache: dict[str, Workload] = {}


def workload_for(cfg: ProfileConfig) -> Workload:
    """The workload of ``cfg``, built once per process and settings (the probe and FLOPs count are kept)."""
    key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    if key not in _cache:
        _cache[key] = ModuleWorkload(cfg) if cfg.module else GPT2Workload(cfg)
    return _cache[key]
