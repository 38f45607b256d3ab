"""Code that profile.py runs only on a GPU, run here on the CPU in-process (so CI's coverage sees it): Lightning's
pytorch profiler on the counted steps (a CPU run profiles only the diagnosis's extra steps) with its phase ranges,
top operators and trace names, and the DDP all-reduce hook's GPU refusal (NCCL's host future completes when queued)."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from callbacks import PhaseTimingCallback
from callbacks.collectives import CollectiveWaits
from tests.helpers import CostlyModule, loader, sleep_ms, trainer

FORWARD_MS, BACKWARD_MS = 40.0, 20.0  # planted sleeps, many times a Linear(4, 4)'s own work


def test_lightning_pytorch_profiler_records_the_counted_steps_phases(tmp_path):
    from gpt2_lightning.profile.profilers import make_profiler, name_traces, top_operators

    profiler = make_profiler("pytorch", tmp_path, "train", warmup_steps=1, steps=2)
    timing = PhaseTimingCallback(warmup_steps=1, counted_steps=2)
    module = CostlyModule(sleep_ms, forward_ms=FORWARD_MS, backward_ms=BACKWARD_MS, optimizer_ms=0.0, warmup_steps=1,
                          warmup_ms=0.0)
    trainer([timing], profiler=profiler, max_steps=3).fit(module, loader(sleep_ms, 0.0))
    top, by = top_operators(profiler)
    assert by == "self CPU time" and top and all(op["self_ms"] >= 0 for op in top)
    assert [op["self_ms"] for op in top] == sorted((op["self_ms"] for op in top), reverse=True)
    assert sum(op["pct"] for op in top) <= 100.0 + 1e-6
    [name] = name_traces(tmp_path, "train")
    assert name == "trace-train.pt.trace.json"
    events = json.loads((tmp_path / name).read_text())["traceEvents"]
    ranges = {}
    for e in events:
        if e.get("ph") == "X" and e.get("name", "").startswith("phase/"):
            ranges.setdefault(e["name"], []).append(e["dur"] / 1000.0)  # microseconds
    # the two counted steps' forward passes (the warm-up step sleeps nothing), each its own range holding its planted
    # sleep. Lightning steps the profiler's schedule when training_step ends: the recorded window runs from the warm-up
    # step's backward to the last counted step's forward, so one counted backward is in it
    assert len(ranges["phase/forward"]) == 2 and min(ranges["phase/forward"]) >= FORWARD_MS, ranges
    assert max(ranges["phase/backward"]) >= BACKWARD_MS, ranges
    assert not (tmp_path / "trace-train-1.pt.trace.json").exists()


@pytest.fixture
def one_rank_ddp():
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    yield torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
    dist.destroy_process_group()


def test_the_all_reduce_hook_stands_aside_on_a_gpu_and_times_the_wait_on_a_cpu(one_rank_ddp):
    gpu = SimpleNamespace(strategy=SimpleNamespace(model=one_rank_ddp, root_device=torch.device("cuda", 0)))
    cb = CollectiveWaits()
    cb.on_fit_start(gpu, None)
    assert cb.unavailable.startswith("on a GPU the all-reduce's host future completes when it is queued")
    cpu = SimpleNamespace(strategy=SimpleNamespace(model=one_rank_ddp, root_device=torch.device("cpu")))
    cb = CollectiveWaits()
    cb.on_fit_start(cpu, None)
    assert cb.unavailable is None
    one_rank_ddp(torch.ones(3, 2)).sum().backward()  # one bucket through the hook
    cb.on_before_optimizer_step(cpu, None, None)
    assert len(cb.step_waits_ms) == 1 and cb.step_waits_ms[0] >= 0.0
    assert one_rank_ddp.module.weight.grad.tolist() == [[3.0, 3.0], [3.0, 3.0]]  # the mean over one rank
