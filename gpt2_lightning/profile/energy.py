"""How a profile run measures energy: idle power once per device before the first experiment, one EnergyCallback
per timed experiment, predict data that lasts until the energy window is done, and fit's step limit.

The callback (``callbacks.energy``) holds the measuring rule; this module only wires it to ProfileConfig.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from callbacks.energy import EnergyCallback, unavailable
from callbacks.energy_meters import EnergyUnavailable, measure_watts, meter_for
from gpt2_lightning.profile import addons
from gpt2_lightning.profile.device_startup import run_device

IDLE_S = 1.0  # long enough for ~10 updates of NVML's counter, short enough not to matter beside an experiment
# fit runs until the energy callback stops it; this only bounds a run whose counters never fill the window
MAX_EXTRA_STEPS = 1_000_000
_idle_cache: dict[str, dict[str, Any]] = {}


def idle_power(cfg: Any) -> dict[str, Any]:
    """Idle draw of this process's device over ``IDLE_S``, measured once per process and device, then remembered:
    call it before the first experiment, while nothing runs. ``{"watts", "seconds", "source"}`` or unavailable."""
    device = run_device(cfg)
    key = str(device)
    if key not in _idle_cache:
        try:
            meter = meter_for(device)
            start = time.perf_counter()
            watts = measure_watts(meter, IDLE_S)
            _idle_cache[key] = {"watts": watts, "seconds": time.perf_counter() - start, "source": meter.source}
        except EnergyUnavailable as e:
            _idle_cache[key] = unavailable(str(e))
        except Exception as e:  # noqa: BLE001 - energy is an add-on: the run goes on without the idle figure
            _idle_cache[key] = addons.failed("idle power", "measurement", addons.one_line(e))
    return _idle_cache[key]


def energy_callback(cfg: Any) -> EnergyCallback | None:
    """An EnergyCallback for one timed experiment (None with --no-energy); put it before the timing callback."""
    if cfg.no_energy:
        return None
    return EnergyCallback(warmup_steps=cfg.warmup_steps, counted_steps=cfg.steps, min_window_s=cfg.energy_window_s,
                          idle_watts=idle_power(cfg).get("watts"), log_figures=False)  # in whole_run/


def until_window_done(data: L.LightningDataModule, energy: EnergyCallback | None) -> None:
    """Make ``data``'s predict batches go round until the energy window is done (predict has no should_stop)."""
    if energy is None:
        return
    inner = data.predict_dataloader
    data.predict_dataloader = lambda: energy.batches(inner())  # Lightning calls the datamodule's attribute


def train_max_steps(cfg: Any) -> int:
    """Exactly warm-up + counted steps without energy; with it, the callback stops fit once the window is done."""
    steps = cfg.warmup_steps + cfg.steps
    return steps if cfg.no_energy else steps + MAX_EXTRA_STEPS


def energy_result(energy: EnergyCallback | None, experiment: str = "", interrupted: bool = False) -> dict[str, Any]:
    """``{"energy": ...}`` for an experiment's results (nothing with --no-energy); a failed measurement is said on
    the console in one line."""
    if energy is None:
        return {}
    if energy.result is None:
        why = "interrupted before the window closed" if interrupted else "the stage did not run"
        return {"energy": unavailable(why)}
    if "error" in energy.result:
        return {"energy": addons.failed(experiment, "energy measurement", energy.result["error"])}
    return {"energy": energy.result}
