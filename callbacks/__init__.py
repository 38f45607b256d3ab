"""Lightning callbacks that time and measure any LightningModule; they import nothing from ``gpt2_lightning``.

The timing engine: ``timing`` (the one device-aware timer), ``step_records`` (what a step is made of),
``phase_timing`` (PhaseTimingCallback), ``phase_summary``, ``phase_ranges``, ``init_timing``, ``outside_steps``.
Several processes: ``collectives`` (time blocked in the all-reduce, threads set in every rank).
Rates: ``throughput`` (ThroughputCallback), ``devices`` (dense peaks, MFU). Energy: ``energy`` (EnergyCallback),
``energy_window``, ``energy_meters``. Around them: ``progress``, ``loss_history``, ``module_ranges``, ``delay``,
``failures``.

The public names below load torch and Lightning only when first used (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {  # name -> the module that defines it
    "DeviceTimer": "callbacks.timing",
    "summarize": "callbacks.stats",
    "EnergyCallback": "callbacks.energy",
    "PhaseTimingCallback": "callbacks.phase_timing",
    "StepRecord": "callbacks.step_records",
    "WindowRecord": "callbacks.step_records",
    "Throughput": "callbacks.throughput",
    "ThroughputCallback": "callbacks.throughput",
    "mfu_pct": "callbacks.devices",
    "peak_lookup": "callbacks.devices",
    "peak_tflops": "callbacks.devices",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'callbacks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
