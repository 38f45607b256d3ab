"""The results of a run: schema, environment, atomic JSON save and checked load.

results.json (schema_version 1)::

    {"schema_version": 1, "status": "complete" | "incomplete", "env": {...}, "config": {...},
     "experiments": {"init": {"phases": {"init": STATS, ...}, ...},
                     "inference": {"phases": {"forward": STATS}, "naive_ms": ..., "throughput": THR, "memory": MEM},
                     "train": {"phases": {"data", "forward", "backward", "optimizer", "step": STATS},
                               "throughput": THR, "memory": MEM}}}

An experiment that failed holds {"error": "..."} instead of its figures.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

SCHEMA_VERSION = 1


class ResultsError(ValueError):
    """A results file that cannot be read as ours; the message is one line naming the file."""


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def collect_env(device: torch.device) -> dict[str, Any]:
    """Versions, processor, threads and accelerator: what a reader needs to trust or compare the figures."""
    import lightning

    env: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device_type": device.type,
        "device_name": "cpu",
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
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


@dataclass
class RunResults:
    env: dict[str, Any]
    config: dict[str, Any]
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "incomplete"  # "complete" once every experiment asked for has run
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "status": self.status,
            "created": self.created,
            "env": self.env,
            "config": self.config,
            "experiments": self.experiments,
        }

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunResults":
        """Read a results.json; any problem is a ResultsError with a one-line message."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ResultsError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ResultsError(f"{path}: cannot read ({e.__class__.__name__})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ResultsError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); truncated?") from None
        if not isinstance(data, dict) or "schema_version" not in data or not isinstance(data.get("experiments"), dict):
            raise ResultsError(f"{path}: not a gpt2-lightning-profiler results file (no schema_version/experiments)")
        if data["schema_version"] != SCHEMA_VERSION:
            raise ResultsError(f"{path}: schema_version {data['schema_version']!r}, this tool reads {SCHEMA_VERSION}")
        return cls(
            env=data.get("env", {}),
            config=data.get("config", {}),
            experiments=data["experiments"],
            status=data.get("status", "incomplete"),
            created=data.get("created", ""),
        )
