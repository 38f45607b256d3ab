"""The up-front estimate of a long CPU run (issue 29): the run's FLOPs over a measured machine rate, said before the
run starts, with the quick alternative; tiny runs pay no measurement."""

from unittest import mock

import pytest


def _cfg(**kw):
    from gpt2_lightning.profile.settings import ProfileConfig

    return ProfileConfig(accelerator="cpu", **kw)


def test_the_matmul_rate_is_counted_work_over_the_scripted_clock():
    from gpt2_lightning.profile.estimate import measure_rates

    # matmul loop: start 0.0, then 0.1, 0.2, 0.3 after each product (3 products in 0.3 s); normal_: 10.0 -> 10.5
    clock = mock.Mock(side_effect=[0.0, 0.1, 0.2, 0.3, 10.0, 10.5])
    rates = measure_rates(seconds=0.3, n=64, clock=clock)
    assert rates.flops_per_s == pytest.approx(3 * 2 * 64**3 / 0.3)
    assert rates.init_values_per_s == pytest.approx(4 * 1024 * 1024 / 0.5)


def test_a_long_run_is_announced_with_the_quick_alternative_and_a_hand_computed_time():
    from gpt2_lightning.profile.estimate import MODEL_EFFICIENCY, MachineRates, estimate_line

    # GPT-2 small at B8 x T1024, train only, no energy: 7 steps of 8192 tokens at (6N + 12·L·d·T) FLOPs each.
    # N: 12 blocks x (12·768² + 13·768), the final norm's 2·768 and the tied token embedding / output head
    # 50257·768 (its padding rows and the position embedding left out): 123,667,200
    n = 12 * (12 * 768 * 768 + 13 * 768) + 2 * 768 + 50257 * 768
    flops_per_step = (6 * n + 12 * 12 * 768 * 1024) * 8 * 1024
    rates = MachineRates(flops_per_s=100e9, init_values_per_s=1e12)
    cfg = _cfg(model="gpt2", experiments="train", no_energy=True)
    total, line = estimate_line(cfg, rates)
    by_hand = 7 * flops_per_step / (100e9 * MODEL_EFFICIENCY["train"])
    assert total == pytest.approx(by_hand, rel=1e-3)  # the builds at 1e12 values/s add ~0.1 ms
    assert line.startswith(f"this run will take about {round(by_hand / 60)} min on this CPU")
    assert "--model tiny --seq-len 64" in line and "100 GFLOP/s" in line


def test_a_short_run_says_nothing_and_measures_nothing():
    from gpt2_lightning.profile.estimate import say_estimate

    said, measure = [], mock.Mock()
    assert say_estimate(_cfg(model="tiny", seq_len=64, batch_size=2), "cpu", said.append, measure) is None
    measure.assert_not_called()  # tiny is short even on a slow machine: no 0.3 s measurement
    assert said == []
    assert say_estimate(_cfg(model="gpt2"), "cuda", said.append, measure) is None  # GPU runs: not estimated
    measure.assert_not_called()


def test_the_line_is_said_and_kept_for_results_json():
    from gpt2_lightning.profile.estimate import MachineRates, say_estimate

    said = []
    kept = say_estimate(_cfg(model="gpt2"), "cpu", said.append, lambda: MachineRates(50e9, 1e8))
    assert len(said) == 1 and said[0].startswith("profile.py: this run will take about ")
    assert kept["said"] and kept["matmul_gflops"] == 50.0 and set(kept["per_experiment_s"]) == {
        "init", "inference", "train"}
    assert kept["seconds"] == pytest.approx(sum(kept["per_experiment_s"].values()), abs=0.5)


def test_a_busy_machine_is_named_in_the_line():
    from gpt2_lightning.profile.estimate import busy_note

    assert busy_note(load=1.5, cpus=2) is None
    assert busy_note(load=6.0, cpus=2) == "other work loads this machine (load 6.0 on 2 cores): expect up to 3.0x longer"


def test_a_repeated_run_says_each_repeat_and_the_whole():
    from gpt2_lightning.profile.estimate import MachineRates, estimate_line

    rates = MachineRates(flops_per_s=100e9, init_values_per_s=1e12)
    once, _ = estimate_line(_cfg(model="gpt2", experiments="train", no_energy=True), rates)
    total, line = estimate_line(_cfg(model="gpt2", experiments="train", no_energy=True, repeat=5), rates)
    assert total == once  # per repeat: each is its own process
    assert line.startswith(f"each of the 5 repeats will take about {round(once / 60)} min "
                           f"({round(5 * once / 60)} min in all) on this CPU")


OWN = "tests/profile/own_models.py"


def _own_cfg(monkeypatch, **kw):
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)  # --module takes the file's path from the current directory
    return _cfg(**{"module": f"{OWN}:TinyLM", "module_args": {"width": 16, "layers": 2},
                   "datamodule": f"{OWN}:TokenData", "datamodule_args": {"vocab": 64}} | kw)


def test_own_module_is_estimated_from_its_counted_flops_and_real_batch(monkeypatch):
    """--module: the workload's FlopCounterMode count at the batch its data gives, not GPT-2 small at B8 x T1024;
    the quick alternative is the module's own, never --model tiny (refused beside --module)."""
    from gpt2_lightning.profile.estimate import MODEL_EFFICIENCY, MachineRates, estimate_line

    cfg = _own_cfg(monkeypatch, batch_size=4, seq_len=8, experiments="train", no_energy=True)
    # TinyLM by hand: forward 2·B·T·(layers·d² + d·vocab) in matmuls, a training step 3x that (input and weight grads)
    train_flops = 3 * 2 * 4 * 8 * (2 * 16 * 16 + 16 * 64)  # 294,912
    rates = MachineRates(flops_per_s=1000.0, init_values_per_s=1e12)  # a slow enough machine to make it long
    total, line = estimate_line(cfg, rates)
    by_hand = 7 * train_flops / (1000.0 * MODEL_EFFICIENCY["train"])  # 2 warm-up + 5 counted steps: 3441 s
    assert total == pytest.approx(by_hand, rel=1e-6)
    assert line.startswith(f"this run will take about {round(by_hand / 60)} min on this CPU (train 57 min: TinyLM, "
                           "B4 x T8, 2 + 5 steps each")
    assert "--model" not in line
    assert line.split("; ")[1] == ("for a first look sooner: fewer --steps (now 5), or a smaller model or batch "
                                   "through --module-args or --datamodule-args")


def test_a_small_own_module_at_the_default_batch_flags_says_nothing(monkeypatch):
    """The walk-through's case: a module whose steps take milliseconds, with --batch-size / --seq-len at GPT-2's
    defaults (8 x 1024), which its data does not take. No '10 min', and no 0.3 s measurement."""
    from gpt2_lightning.profile.estimate import say_estimate

    cfg = _own_cfg(monkeypatch, datamodule_args={"vocab": 64, "batch_size": 4, "seq_len": 8})
    said, measure = [], mock.Mock()
    assert say_estimate(cfg, "cpu", said.append, measure) is None
    measure.assert_not_called()
    assert said == []


def test_no_flops_count_no_estimate():
    from gpt2_lightning.profile.estimate import MachineRates, StepWork, estimate_line

    work = StepWork("Uncountable", 4, 8, {"train": None, "inference": 1e15}, params=1000)
    assert estimate_line(_cfg(model="tiny"), MachineRates(1e3, 1e12), work) == (None, None)


@pytest.mark.parametrize("kw, diagnosis_steps", [
    ({"keep_trace": True}, (1 + 3) * 5),  # asked for: 1 warm-up + 3 profiled steps, each 5x a step
    ({"profiler": "pytorch"}, (1 + 3) * 5),
    ({}, 0),  # 20 step-lengths against 7: 74% of the experiment, above the 20% the default allows
    ({"steps": 200}, (1 + 3) * 5),  # 20 against 202: 9%, run by default
    ({"keep_trace": True, "no_diagnose": True}, 0),
])
def test_the_cpu_diagnosis_steps_are_counted_by_the_rule_that_runs_them(kw, diagnosis_steps):
    from gpt2_lightning.profile.estimate import MODEL_EFFICIENCY, MachineRates, estimate_seconds

    n = 12 * (12 * 768 * 768 + 13 * 768) + 2 * 768 + 50257 * 768  # as in the test above: GPT-2 small, B8 x T1024
    step_s = (6 * n + 12 * 12 * 768 * 1024) * 8 * 1024 / (100e9 * MODEL_EFFICIENCY["train"])
    cfg = _cfg(model="gpt2", experiments="train", no_energy=True, diagnose_steps=3, **kw)
    parts = estimate_seconds(cfg, MachineRates(flops_per_s=100e9, init_values_per_s=1e15))
    assert parts["train"] == pytest.approx((2 + cfg.steps + diagnosis_steps) * step_s, rel=1e-4)
