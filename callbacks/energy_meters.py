"""Energy counters behind one small interface: NVML's total-energy counter per GPU, Linux RAPL per CPU package.

Why counters and not power samples: a counter integrates power in the hardware, so the energy of a window is one
subtraction, exact up to the counter's update period (NVML's moves about every 100 ms), whatever happens between the
reads. A power sample every N ms misses what happens between samples. Zeus measures the same way.

A meter either reads, or raises ``EnergyUnavailable`` with one line saying why (no driver, a MIG slice, a counter the
GPU does not have, no permission, no powercap). Unavailable is never a crash and never a guess.

    meter.read() -> raw counter values, one per device or package (units are the meter's own)
    meter.joules(start, end) -> joules between two reads, summed over devices (wrap-around handled)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

RAPL_ROOT = "/sys/class/powercap"


class EnergyUnavailable(Exception):
    """Energy cannot be measured here; the message is one line saying why."""


class EnergyMeter(Protocol):
    source: str  # "nvml" or "rapl": written into results as energy.source
    devices: int  # devices (GPUs) or CPU packages the readings cover

    def read(self) -> tuple[int, ...]: ...

    def joules(self, start: tuple[int, ...], end: tuple[int, ...]) -> float: ...


# ----------------------------------------------------------------------------------------------------------- NVML
def _load_pynvml() -> Any:
    try:
        import pynvml  # nvidia-ml-py: NVIDIA's own bindings (torch.cuda.power_draw uses them too)
    except ImportError:
        raise EnergyUnavailable("nvml: nvidia-ml-py is not installed (pip install nvidia-ml-py)") from None
    return pynvml


class NvmlMeter:
    """``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver loaded) of each GPU of the run.

    Args:
        ids: one per GPU: an NVML index (int), or a CUDA device's UUID (str, as torch reports it; with or without
            NVML's ``GPU-`` prefix): UUIDs survive CUDA_VISIBLE_DEVICES and CUDA's own device ordering, indices do not.
        nvml: the pynvml module (tests pass a scripted one).
    """

    source = "nvml"

    def __init__(self, ids: Sequence[int | str], nvml: Any = None) -> None:
        self.ids = list(ids)
        self.devices = len(self.ids)
        self._nvml = nvml
        self._handles: list[Any] | None = None

    def _open(self) -> list[Any]:
        if self._handles is not None:
            return self._handles
        if self._nvml is None:
            self._nvml = _load_pynvml()
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise EnergyUnavailable(f"nvml: no NVIDIA driver to talk to ({e})") from None
        handles = []
        for device_id in self.ids:
            try:
                handle = self._handle(device_id)
            except nvml.NVMLError as e:
                raise EnergyUnavailable(f"nvml: cannot open GPU {device_id} ({e})") from None
            is_mig = getattr(nvml, "nvmlDeviceIsMigDeviceHandle", None)
            if is_mig is not None and _quietly(is_mig, handle, nvml):
                raise EnergyUnavailable("nvml: a MIG slice: the energy counter covers the whole board, not a slice")
            handles.append(handle)
        self._handles = handles
        return handles

    def _handle(self, device_id: int | str) -> Any:
        nvml = self._nvml
        if isinstance(device_id, int):
            return nvml.nvmlDeviceGetHandleByIndex(device_id)
        wanted = device_id.lower().removeprefix("gpu-")
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            if uuid.lower().removeprefix("gpu-") == wanted:
                return handle
        raise EnergyUnavailable(f"nvml: no GPU with UUID {device_id} (a MIG slice? its board's counter is shared)")

    def read(self) -> tuple[int, ...]:
        handles = self._open()
        nvml = self._nvml
        try:
            return tuple(int(nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in handles)
        except nvml.NVMLError_NotSupported:
            raise EnergyUnavailable("nvml: this GPU has no total-energy counter (Volta or newer, not a MIG slice, "
                                    "is needed)") from None
        except nvml.NVMLError_NoPermission:
            raise EnergyUnavailable("nvml: no permission to read the energy counter") from None
        except nvml.NVMLError as e:
            raise EnergyUnavailable(f"nvml: cannot read the energy counter ({e})") from None

    def joules(self, start: tuple[int, ...], end: tuple[int, ...]) -> float:
        return sum(e - s for s, e in zip(start, end)) / 1000.0  # mJ -> J; 64-bit, never wraps in practice


def _quietly(fn: Callable[..., Any], handle: Any, nvml: Any) -> bool:
    try:
        return bool(fn(handle))
    except nvml.NVMLError:  # older drivers do not know MIG at all: not a MIG slice
        return False


# ----------------------------------------------------------------------------------------------------------- RAPL
class RaplMeter:
    """Linux RAPL through powercap: ``<root>/intel-rapl:N/energy_uj`` of every CPU package (AMD's too).

    Only the top-level package zones are read: their sub-zones (cores, uncore, DRAM on some parts) are inside them,
    and ``psys`` covers the whole platform, so either would count energy twice. A package counts every process on
    it, not only this run's. ``energy_uj`` wraps to 0 after ``max_energy_range_uj``; one wrap per window is undone
    (a window longer than a whole wrap period, minutes at full power, would be short by a wrap).
    """

    source = "rapl"

    def __init__(self, root: str | Path = RAPL_ROOT) -> None:
        self.root = Path(root)
        self._zones: list[tuple[Path, int]] | None = None  # (energy_uj path, max_energy_range_uj)

    @property
    def devices(self) -> int:
        return len(self._open())

    def _open(self) -> list[tuple[Path, int]]:
        if self._zones is not None:
            return self._zones
        if not self.root.is_dir():
            raise EnergyUnavailable(f"rapl: no powercap at {self.root} (not Linux, or a VM/container without RAPL)")
        zones = []
        for zone in sorted(self.root.glob("intel-rapl:*")):
            if zone.name.count(":") != 1:  # intel-rapl:0:1 is a sub-zone of package 0
                continue
            name = _read(zone / "name").strip()
            if not name.startswith("package"):
                continue
            zones.append((zone / "energy_uj", int(_read(zone / "max_energy_range_uj"))))
        if not zones:
            raise EnergyUnavailable(f"rapl: no CPU package zone under {self.root}")
        self._zones = zones
        return zones

    def read(self) -> tuple[int, ...]:
        return tuple(int(_read(path)) for path, _ in self._open())

    def joules(self, start: tuple[int, ...], end: tuple[int, ...]) -> float:
        total_uj = 0
        for (_, max_range), s, e in zip(self._open(), start, end):
            total_uj += e - s if e >= s else e + max_range - s  # wrapped once: up to the top, then from 0
        return total_uj / 1e6


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except PermissionError:
        raise EnergyUnavailable(f"rapl: no permission to read {path} (root only since Linux 5.10; "
                                f"chmod o+r it to allow)") from None
    except OSError as e:
        raise EnergyUnavailable(f"rapl: cannot read {path} ({e.strerror or e})") from None


# ---------------------------------------------------------------------------------------------------------- power
def measure_watts(meter: EnergyMeter, seconds: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """Average power over ``seconds`` of doing nothing: the idle draw (raises EnergyUnavailable)."""
    start, t0 = meter.read(), clock()
    sleep(seconds)
    end, t1 = meter.read(), clock()
    elapsed = t1 - t0
    if elapsed <= 0:
        raise EnergyUnavailable("idle: the clock did not move")
    return meter.joules(start, end) / elapsed


def meter_for(device: Any) -> EnergyMeter:
    """NVML for a CUDA device (found by its UUID), RAPL for the CPU."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        props = torch.cuda.get_device_properties(device)
        uuid = getattr(props, "uuid", None)
        return NvmlMeter([str(uuid) if uuid is not None else (device.index or 0)])
    return RaplMeter()
