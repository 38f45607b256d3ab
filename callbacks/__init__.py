"""Lightning callbacks that time and measure any LightningModule; they import nothing from ``gpt2_lightning``.

The timing engine: ``timing`` (the one device-aware timer), ``step_records`` (what a step is made of),
``phase_timing`` (PhaseTimingCallback), ``phase_summary``, ``phase_ranges``, ``init_timing``, ``outside_steps``.
Several processes: ``collectives`` (time blocked in the all-reduce, threads set in every rank).
Rates: ``throughput`` (ThroughputCallback), ``tokens`` (real tokens of a batch), ``devices`` (dense peaks, MFU).
Energy: ``energy`` (EnergyCallback), ``energy_window``, ``energy_meters``. Around them: ``progress``,
``loss_history``, ``module_ranges`` (ModuleRangesCallback), ``delay``, ``failures``.

The same modules import as ``lightning_phase_callbacks`` too, a name no user's project holds: a project with its own
``callbacks.py`` (which ``from callbacks import ...`` would find first) imports these as
``from lightning_phase_callbacks import PhaseTimingCallback``. So the modules import one another relatively, never by
the name ``callbacks``. Use one name per process: the two load the same files as two sets of classes.

The public names below load torch and Lightning only when first used (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {  # name -> the module that defines it, relative to this package
    "DeviceTimer": ".timing",
    "summarize": ".stats",
    "EnergyCallback": ".energy",
    "ModuleRangesCallback": ".module_ranges",
    "PhaseTimingCallback": ".phase_timing",
    "StepRecord": ".step_records",
    "WindowRecord": ".step_records",
    "Throughput": ".throughput",
    "ThroughputCallback": ".throughput",
    "mfu_pct": ".devices",
    "peak_lookup": ".devices",
    "peak_tflops": ".devices",
    "token_source": ".tokens",
    "tokens_in_batch": ".tokens",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
