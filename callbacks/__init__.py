"""Lightning callbacks that time and measure any LightningModule."""

from callbacks.energy import EnergyCallback
from callbacks.phase_timing import PhaseTimingCallback, StepRecord
from callbacks.throughput import Throughput, ThroughputCallback
from callbacks.timing import DeviceTimer, summarize

__all__ = ["DeviceTimer", "EnergyCallback", "PhaseTimingCallback", "StepRecord", "Throughput", "ThroughputCallback",
           "summarize"]
