"""One energy window's arithmetic, with no Trainer in it: the counters at its start, the steps and tokens inside it, the
counters at its end, how many more steps it needs, and the ``energy`` record of results.json (``callbacks.energy`` is
the Lightning side)."""

from __future__ import annotations

import math
from typing import Any

from .energy_meters import EnergyMeter

MIN_WINDOW_S = 2.0  # NVML's counter moves about every 100 ms: over 2 s that read-out step is at most ~5 %
J_PER_KWH = 3.6e6


def energy_figures(joules: float, window_s: float, steps: int, tokens: int, idle_watts: float | None, source: str,
                   devices: int) -> dict[str, Any]:
    """The ``energy`` record of results.json from one window's measured totals (every rate from elapsed time)."""
    return {
        "joules": joules,
        # what the work added to an idle board; the board draws idle power anyway (may dip below 0 when noisy)
        "joules_above_idle": joules - idle_watts * window_s if idle_watts is not None else None,
        "avg_watts": joules / window_s,
        "idle_watts": idle_watts,
        "window_s": window_s,
        "window_steps": steps,
        "window_tokens": tokens,
        "joules_per_token": joules / tokens if tokens > 0 else None,
        "tokens_per_kwh": tokens / (joules / J_PER_KWH) if joules > 0 and tokens > 0 else None,
        "source": source,
        "devices": devices,
    }


def unavailable(why: str) -> dict[str, str]:
    return {"unavailable": why}


class EnergyWindow:
    """One window: the counters at its start, the steps and tokens inside it, the counters at its end."""

    def __init__(self, meter: EnergyMeter, min_seconds: float = MIN_WINDOW_S, idle_watts: float | None = None) -> None:
        self.meter, self.min_seconds, self.idle_watts = meter, min_seconds, idle_watts
        self.start: tuple[int, ...] | None = None
        self.t0 = 0.0
        self.steps = 0
        self.tokens = 0

    def open(self, now: float) -> None:
        """Read the counters (raises EnergyUnavailable); ``now`` is the clock right after the device wait."""
        self.start, self.t0 = self.meter.read(), now
        self.steps = self.tokens = 0

    def add_step(self) -> None:
        """One step inside the window (its tokens are set once it closes, when the device has passed them)."""
        self.steps += 1

    def more_steps(self, elapsed_s: float, device: tuple[int, float] | None = None) -> int:
        """Steps still needed for ``min_seconds``; 0 when the window is surely long enough.

        ``elapsed_s``: the host clock since the window opened (it never reads ahead of the device). ``device``: (steps
        the device has finished, the device seconds they took), the rate to plan by. Without a device rate yet, look
        again after the next step. A plan never more than doubles the window's steps: the next look plans again.
        """
        done, device_s = device if device is not None else (0, 0.0)
        if max(elapsed_s, device_s) >= self.min_seconds:
            return 0
        if done <= 0 or device_s <= 0:
            return 1
        needed = math.ceil(done * self.min_seconds / device_s)  # steps whose device time makes the window
        return max(1, min(needed - self.steps, self.steps))

    def close(self, now: float) -> dict[str, Any]:
        """Read the counters again (raises EnergyUnavailable): the ``energy`` record of this window alone."""
        end = self.meter.read()
        window_s = now - self.t0
        joules = self.meter.joules(self.start, end)
        return energy_figures(joules, window_s, self.steps, self.tokens, self.idle_watts, self.meter.source,
                              self.meter.devices)
