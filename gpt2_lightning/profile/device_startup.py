"""Which device this process drives, and its one-off start-up, timed once per process before anything else touches it.

With ``--devices 1,2`` rank 0 drives cuda:1 and rank 1 cuda:2: each process times its own device's start-up and
records its own device in ``env``, never cuda:0's. The start-up must be the first CUDA call of the process (the CUDA
context, the allocator, the first kernel): anything that asks CUDA a question first, such as a compute capability
check, has already paid for it, so such checks call ``device_startup_ms`` first.
"""

from __future__ import annotations

import os
from typing import Any

import torch

_STARTUP_MS: dict[str, float] = {}  # device -> its start-up, measured once per process


def run_device(cfg: Any) -> torch.device:
    """The device this process drives: CUDA device LOCAL_RANK of --devices (the first alone), or the CPU."""
    if cfg.accelerator == "cpu" or (cfg.accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    devices = cfg.trainer_devices
    if isinstance(devices, str) and devices != "auto":
        indices = [int(d) for d in devices.split(",") if d.strip()]
        return torch.device("cuda", indices[min(local_rank, len(indices) - 1)])
    return torch.device("cuda", local_rank)


def device_startup_ms(device: torch.device) -> float | None:
    """Bring the device up and time it, once per process (None when something else brought CUDA up first: then it
    cannot be measured any more).

    Run it before anything else touches CUDA (collecting the environment does; so can a CPU run before a GPU run, or
    a capability check): the first CUDA call of a process pays for the context, and that cost belongs to no experiment.
    """
    from callbacks.timing import DeviceTimer

    key = str(device)
    if key not in _STARTUP_MS:
        if device.type == "cuda" and torch.cuda.is_initialized():
            return None
        _STARTUP_MS[key] = DeviceTimer(device).startup_ms()
    return _STARTUP_MS[key]
