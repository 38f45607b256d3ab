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
