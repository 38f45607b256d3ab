"""Which profiler ran over a run's *counted* steps: the one named by ``--profiler``, except ``pytorch`` on a CPU, which
profiles only the diagnosis's uncounted steps (``gpt2_lightning.profile.diagnosis``), so the counted steps ran
un-profiled there. Plain Python, read from results.json alone."""

from __future__ import annotations

from typing import Any


def counted_steps_profiler(data: dict[str, Any]) -> str:
    """The profiler over the counted steps of a results.json (``data``): 'none', 'simple', 'advanced' or 'pytorch'."""
    on_cpu = data.get("env", {}).get("device_type") == "cpu" or data.get("config", {}).get("accelerator") == "cpu"
    return profiler_over_counted_steps(data.get("config", {}).get("profiler"), on_cpu)


def profiler_over_counted_steps(profiler: str | None, on_cpu: bool) -> str:
    """The profiler over the counted steps of a run with ``--profiler profiler`` on a CPU (``on_cpu``) or not."""
    profiler = str(profiler or "none")
    return "none" if profiler == "pytorch" and on_cpu else profiler
