"""Lightning's profilers for a profile run: which one, where its files go, and what the trace says.

``--profiler pytorch`` on a GPU records the timed steps of an experiment with ``torch.profiler`` on a schedule that
fits the run (warm-up steps skipped, timed steps recorded) and exports a Chrome/Perfetto trace (``*.pt.trace.json``)
into the run directory. The profiler itself slows the profiled steps: timings from a profiled run are for finding where
time goes, not for quoting. On a CPU, where it slows the host itself, the experiments do not put it on the timed
steps: it profiles only the diagnosis's extra, uncounted steps (``gpt2_lightning.profile.diagnosis``).

``kernel_profiler`` and ``ProfilerStepCallback`` profile the diagnosis's extra, uncounted steps (``diagnosis_run``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.profilers import AdvancedProfiler, Profiler, PyTorchProfiler, SimpleProfiler


def make_profiler(name: str, run_dir: Path, experiment: str, warmup_steps: int, steps: int) -> Profiler | None:
    """The profiler named by --profiler, writing into run_dir; None for 'none'."""
    filename = f"profiler-{experiment}"
    if name == "none":
        return None
    if name == "simple":
        return SimpleProfiler(dirpath=run_dir, filename=filename)
    if name == "advanced":
        return AdvancedProfiler(dirpath=run_dir, filename=filename)
    if name == "pytorch":
        import torch

        # the torch.profiler schedule needs at least one warm-up step before recording
        schedule = torch.profiler.schedule(wait=max(0, warmup_steps - 1), warmup=1, active=steps, repeat=1)
        return PyTorchProfiler(
            dirpath=run_dir, filename=filename, export_to_chrome=True, schedule=schedule, row_limit=30,
            record_module_names=False,
        )
    raise ValueError(f"unknown profiler {name!r}")


def top_operators(profiler: Profiler | None, limit: int = 10) -> tuple[list[dict[str, Any]], str] | None:
    """The operators that took the most self time in the profiled steps: device time on GPU, else CPU time.

    Only host-side operators (``aten::mm``, ...) are ranked: each one's self device time is the time of the kernels
    it launched itself, so the shares add up to the whole without counting a kernel twice (once as its own event,
    once under the operator that launched it).
    """
    from torch.autograd import DeviceType

    if not isinstance(profiler, PyTorchProfiler):
        return None
    events = getattr(profiler, "function_events", None)
    if not events:
        return None
    averages = [
        a for a in events.key_averages()
        if getattr(a, "device_type", DeviceType.CPU) == DeviceType.CPU
        # ranges, not operators: Lightning's hooks, the profiler's steps, the optimizer's step, our phases
        and not a.key.startswith(("[pl][", "ProfilerStep", "Optimizer.", "phase/"))
        and a.key not in ("cudaDeviceSynchronize",)
    ]
    device = sum(getattr(a, "self_device_time_total", 0) for a in averages) > 0
    attr, by = ("self_device_time_total", "self device time") if device else ("self_cpu_time_total", "self CPU time")
    total = sum(getattr(a, attr) for a in averages) or 1.0
    ranked = sorted(averages, key=lambda a: getattr(a, attr), reverse=True)[:limit]
    return [
        {"name": a.key, "self_ms": getattr(a, attr) / 1000.0, "pct": 100.0 * getattr(a, attr) / total, "calls": a.count}
        for a in ranked
    ], by


def rank_suffix(rank: int, world_size: int) -> str:
    """``-rank1`` in the names of a multi-process run's files (rank 0's too), nothing for one process."""
    return f"-rank{rank}" if world_size > 1 else ""


def name_traces(run_dir: Path, experiment: str, rank: int = 0, world_size: int = 1) -> list[str]:
    """Give this experiment's new traces plain names: trace-<experiment>[-rankR][-N].pt.trace.json (Lightning's have
    the strategy's class name in brackets and a timestamp). With several processes each rank renames only its own
    files (``profiler-<experiment>-rankR`` in Lightning's name, see ``_timed_run``): never another rank's."""
    named = []
    suffix = rank_suffix(rank, world_size)
    for path in sorted(run_dir.glob(f"*profiler-{experiment}{suffix}-*.pt.trace.json")):
        target, n = run_dir / f"trace-{experiment}{suffix}.pt.trace.json", 1
        while target.exists():
            target, n = run_dir / f"trace-{experiment}{suffix}-{n}.pt.trace.json", n + 1
        path.rename(target)
        named.append(target.name)
    return named


# ------------------------------------------------------------------------------------------------ diagnosis steps
class ProfilerStepCallback(Callback):
    """Steps a ``torch.profiler.profile`` at the end of every train or predict batch: one ``ProfilerStep#N`` range per
    batch, from one batch end to the next (the same span as PhaseTimingCallback's ``step``)."""

    def __init__(self, prof: Any) -> None:
        self.prof = prof

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.prof.step()

    def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.prof.step()


@contextlib.contextmanager
def kernel_profiler(trace_path: Path, steps: int, cuda: bool, warmup: int = 1) -> Iterator[Any]:
    """torch.profiler with the least overhead that still records kernels: CPU operators (for the step ranges and the
    kernel launches) and CUDA activity, no shapes, memory, stacks, FLOPs or module names. ``warmup`` steps run traced
    but are dropped (the tracer's own start-up), then ``steps`` are recorded and written to ``trace_path`` (gzip if it
    ends in .gz) when the last one ends."""
    import torch
    from torch.profiler import ProfilerActivity

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(
        activities=activities,
        schedule=torch.profiler.schedule(wait=0, warmup=warmup, active=steps, repeat=1),
        on_trace_ready=lambda prof: prof.export_chrome_trace(str(trace_path)),
        record_shapes=False, profile_memory=False, with_stack=False, with_flops=False, with_modules=False,
    ) as prof:
        yield prof
