"""The environment a run measured in: versions, processor, threads, the accelerator, the code's git commit, and the
device's start-up, timed first (collecting the rest touches CUDA)."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from gpt2_lightning.profile.device_startup import device_startup_ms
from gpt2_lightning.profile.machine import cpu_clock, git_state, usable_cpus


def collect_env(device: torch.device) -> dict[str, Any]:
    """Versions, processor, threads and accelerator: what a reader needs to trust or compare the figures."""
    import lightning

    env: dict[str, Any] = {
        "hostname": platform.node(),
        "pid": os.getpid(),  # one process per measurement with --repeat, sweeps and cpu,gpu: each its own
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),  # the process's affinity: what its threads can run on
        "torch_threads": torch.get_num_threads(),
        "device_type": device.type,
        "device_name": "cpu",
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        **cpu_clock(),
        "git": git_state(),  # the current directory's repository: which code was measured
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            device_name=torch.cuda.get_device_name(device),
            device_count=torch.cuda.device_count(),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            device_memory_gib=props.total_memory / 1024**3,
            multiprocessors=props.multi_processor_count,
        )
    else:
        env["device_name"] = env["cpu"]
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measured_env(device: torch.device) -> dict[str, Any]:
    """The run's environment on this process's own device (``run_device``), with its start-up timed first:
    collecting the environment itself touches CUDA."""
    startup_ms = device_startup_ms(device)
    return collect_env(device) | {"device_startup_ms": startup_ms}
