"""Lightning callbacks that time and measure any LightningModule."""

from callbacks.devices import mfu_pct, peak_lookup, peak_tflops
from callbacks.energy import EnergyCallback
from callbacks.phase_timing import PhaseTimingCallback
from callbacks.step_records import StepRecord, WindowRecord
from callbacks.throughput import Throughput, ThroughputCallback
from callbacks.timing import DeviceTimer, summarize

__all__ = ["DeviceTimer", "EnergyCallback", "PhaseTimingCallback", "StepRecord", "Throughput", "ThroughputCallback",
           "WindowRecord", "mfu_pct", "peak_lookup", "peak_tflops", "summarize"]
