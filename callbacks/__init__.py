"""Lightning callbacks that time and measure any LightningModule."""

from callbacks.phase_timing import PhaseTimingCallback, StepRecord
from callbacks.throughput import Throughput, ThroughputCallback
from callbacks.timing import DeviceTimer, summarize

__all__ = ["DeviceTimer", "PhaseTimingCallback", "StepRecord", "Throughput", "ThroughputCallback", "summarize"]
