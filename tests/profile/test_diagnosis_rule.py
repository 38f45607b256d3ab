"""One rule decides whether the diagnosis's extra steps run: the run itself, the per-rank gathering and the up-front
estimate all read it (review item 3: --keep-trace ran the CPU diagnosis but never gathered its per-rank rows, and
the estimate counted its steps only under --profiler pytorch, at 1x)."""

import pytest

from gpt2_lightning.profile.diagnosis import _cpu_not_run, diagnosis_expected, profiles_counted_steps
from gpt2_lightning.profile.settings import ProfileConfig


@pytest.mark.parametrize("kw, runs", [
    ({"keep_trace": True}, True),  # asked for: runs on every rank, so every rank gathers
    ({"profiler": "pytorch"}, True),
    ({}, False),  # several CPU processes: only when asked for
    ({"keep_trace": True, "no_diagnose": True}, False),
])
def test_a_multi_process_cpu_run_gathers_rows_exactly_when_its_ranks_diagnose(kw, runs):
    cfg = ProfileConfig(accelerator="cpu", devices="2", **kw)
    result = {"phases": {"step": {"median_ms": 10.0}}, "per_step": [{"step_ms": 10.0}]}
    ran = not cfg.no_diagnose and _cpu_not_run(cfg, result, "train", wall_s=100.0) is None
    assert ran is runs
    assert diagnosis_expected(cfg) is runs


def test_the_counted_steps_are_profiled_but_for_pytorch_on_a_cpu():
    assert not profiles_counted_steps(ProfileConfig(accelerator="cpu", profiler="pytorch"))
    assert profiles_counted_steps(ProfileConfig(accelerator="cpu", profiler="simple"))
    assert not profiles_counted_steps(ProfileConfig(accelerator="cpu"))
