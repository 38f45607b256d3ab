"""The phase split is attributed right: known costs in, the same times out, warm-up excluded."""

from unittest import mock

import pytest

from callbacks import PhaseTimingCallback
from callbacks.phase_timing import TRAIN_PHASES
from tests.helpers import CostlyModule, RecordingLogger, ScriptedClock, loader, sleep_ms, trainer


def test_scripted_clock_exact_attribution():
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=2)
    module = CostlyModule(clock.advance, forward_ms=10, backward_ms=20, optimizer_ms=5, warmup_steps=2,
                          build_ms=11, optimizer_build_ms=2)
    with mock.patch("time.perf_counter", clock):
        trainer([timing], max_steps=7).fit(module, loader(clock.advance, data_ms=3))
    s = timing.summary()
    assert set(s) == set(TRAIN_PHASES)
    expected = dict(data=3.0, forward=10.0, backward=20.0, optimizer=5.0, step=38.0)
    for phase, ms in expected.items():
        assert s[phase]["n"] == 5, phase  # 7 steps, 2 of warm-up
        for key in ("median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "max_ms"):
            assert s[phase][key] == pytest.approx(ms), (phase, key)
    # the warm-up steps were timed (100 ms per phase) but are not in the summary
    warm = timing.warmup_records("train")
    assert len(warm) == 2 and warm[1].phases["forward"] == pytest.approx(100.0)
    init = timing.summary("init")
    assert init["init_model"]["median_ms"] == pytest.approx(11.0)
    assert init["init_optimizer"]["median_ms"] == pytest.approx(2.0)
    assert init["init"]["median_ms"] == pytest.approx(13.0)


def test_scripted_clock_inference_and_naive():
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=1)
    module = CostlyModule(clock.advance, forward_ms=7)
    with mock.patch("time.perf_counter", clock):
        trainer([timing]).predict(module, loader(clock.advance, data_ms=1, length=4), return_predictions=False)
    s = timing.summary("predict")
    assert s["forward"]["n"] == 3 and s["forward"]["median_ms"] == pytest.approx(7.0)
    # on the CPU the host clock is the truth, so the naive figure agrees
    assert timing.naive_summary("predict")["median_ms"] == pytest.approx(7.0)


def test_per_step_values_logged_with_units():
    clock = ScriptedClock()
    logger = RecordingLogger()
    timing = PhaseTimingCallback(warmup_steps=1)
    module = CostlyModule(clock.advance, warmup_steps=1)
    with mock.patch("time.perf_counter", clock):
        trainer([timing], max_steps=3, logger=logger, log_every_n_steps=1000).fit(module, loader(clock.advance, 3))
    logged = [(step, m) for step, m in logger.logged if any(k.startswith("time/") for k in m)]
    assert [step for step, _ in logged] == [1, 2]  # the warm-up step 0 is not logged
    assert logged[0][1] == pytest.approx(
        {"time/data_ms": 3.0, "time/forward_ms": 10.0, "time/backward_ms": 20.0, "time/optimizer_ms": 5.0,
         "time/step_ms": 38.0}
    )


@pytest.mark.slow
def test_real_sleeps_attribution():
    timing = PhaseTimingCallback(warmup_steps=1)
    module = CostlyModule(sleep_ms, forward_ms=20, backward_ms=30, optimizer_ms=10, warmup_steps=1, warmup_ms=1)
    trainer([timing], max_steps=5).fit(module, loader(sleep_ms, data_ms=10))
    s = timing.summary()
    tolerance_ms = 15.0  # sleeps overshoot on a loaded machine; they never undershoot
    for phase, ms in dict(data=10, forward=20, backward=30, optimizer=10).items():
        assert s[phase]["n"] == 4
        assert ms - 0.5 <= s[phase]["median_ms"] <= ms + tolerance_ms, (phase, s[phase])
    for r in timing.records:
        if not r.warmup:
            parts = sum(r.phases[p] for p in ("data", "forward", "backward", "optimizer"))
            assert 0.90 * r.phases["step"] <= parts <= r.phases["step"], r.phases


def test_resolves_in_windows_not_per_step():
    """Marks are resolved every `resolve_every` steps and at the end: the listener sees batches of records."""
    clock = ScriptedClock()
    seen = []
    timing = PhaseTimingCallback(warmup_steps=0, resolve_every=4)
    timing.add_listener(lambda trainer, records: seen.append(len(records)))
    with mock.patch("time.perf_counter", clock):
        trainer([timing], max_steps=10).fit(CostlyModule(clock.advance, warmup_steps=0), loader(clock.advance, 1))
    assert seen == [4, 4, 2]
