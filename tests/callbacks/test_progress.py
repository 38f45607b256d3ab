"""Progress with an ETA for long experiments only, on the host clock; a step-counted bar for train.py."""

import io

import pytest

from callbacks.progress import ProgressCallback, StepProgressBar, fmt_seconds
from tests.helpers import CostlyModule, ScriptedClock, loader, trainer


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_ticks(progress, clock, seconds_each):
    progress.setup(None, None, "fit")
    for s in seconds_each:
        clock.advance(s * 1000)
        progress.tick()


def test_short_run_shows_nothing():
    clock, out = ScriptedClock(), io.StringIO()
    run_ticks(ProgressCallback(7, warmup=2, label="train", stream=out, clock=clock), clock, [1.0, 1.0] + [1.0] * 5)
    assert out.getvalue() == ""


def test_long_run_in_a_log_gets_plain_lines_with_an_eta():
    clock, out = ScriptedClock(), io.StringIO()
    progress = ProgressCallback(25, warmup=2, label="train", stream=out, clock=clock, log_every_s=10.0)
    run_ticks(progress, clock, [5.0, 3.0] + [2.0] * 23)
    lines = out.getvalue().splitlines()
    # shown from the first steady step (8 s so far + 22 x 2 s left > 10 s), then at most every 10 s, then done
    assert lines[0] == "[train] step 3/25 · 2.00 s/step · ETA 44 s"
    assert lines[1] == "[train] step 8/25 · 2.00 s/step · ETA 34 s"
    assert lines[-1] == "[train] 25/25 steps done in 54 s"
    assert "\r" not in out.getvalue()
    assert len(lines) == 6  # steps 3, 8, 13, 18, 23, then done


def test_terminal_gets_one_live_line():
    clock, out = ScriptedClock(), Terminal()
    progress = ProgressCallback(10, warmup=1, label="inference", unit="pass", stream=out, clock=clock)
    run_ticks(progress, clock, [4.0] + [2.0] * 9)
    text = out.getvalue()
    assert text.count("\n") == 1  # the line is rewritten in place, ended once
    assert text.count("\r") == 9  # one rewrite per pass from the first timed one
    assert "\r[inference] pass 2/10 · 2.00 s/pass · ETA 16 s\x1b[K" in text
    assert text.endswith("\r[inference] 10/10 passes done in 22 s\x1b[K\n")


def test_a_slow_warm_up_is_shown_before_any_eta():
    clock, out = ScriptedClock(), io.StringIO()
    progress = ProgressCallback(7, warmup=2, label="inference", unit="pass", stream=out, clock=clock)
    run_ticks(progress, clock, [12.0])
    assert out.getvalue() == "[inference] pass 1/7 (warm-up, not timed) · 12 s so far · ETA after the first timed pass\n"


def test_eta_ignores_warm_up_and_uses_the_median():
    clock = ScriptedClock()
    progress = ProgressCallback(10, warmup=2, stream=io.StringIO(), clock=clock)
    run_ticks(progress, clock, [60.0, 30.0, 1.0, 9.0, 1.0])
    assert progress.steady_s == [1.0, 9.0, 1.0]
    assert progress.eta_s() == pytest.approx(5 * 1.0)


def test_counts_builds_per_trainer_run():
    clock, out = ScriptedClock(), io.StringIO()
    progress = ProgressCallback(3, warmup=1, label="init", unit="build", per="fit", stream=out, clock=clock)
    progress.setup(None, None, "fit")
    for _ in range(3):
        clock.advance(8000)
        progress.on_train_batch_end(None, None, None, None, 0)  # batches are not builds
        progress.on_fit_start(None, None)
    assert progress.done == 3 and out.getvalue().splitlines()[-1] == "[init] 3/3 builds done in 24 s"


def test_in_a_real_trainer_it_counts_batches():
    clock = ScriptedClock()
    progress = ProgressCallback(6, warmup=1, label="train", stream=io.StringIO(), clock=clock, min_seconds=0.0)
    model = CostlyModule(clock.advance, forward_ms=500.0, backward_ms=400.0, optimizer_ms=100.0, warmup_steps=1,
                         warmup_ms=3000.0)
    trainer([progress], max_steps=6).fit(model, loader(clock.advance, data_ms=0.0))
    assert progress.done == 6
    assert progress.steady_s == pytest.approx([1.0] * 5)


def test_fmt_seconds():
    assert [fmt_seconds(s) for s in (0.4, 12.4, 185, 3720)] == ["0.40 s", "12 s", "3 min 05 s", "1 h 02 min"]


def test_step_progress_bar_counts_optimizer_steps_without_v_num(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    clock = ScriptedClock()
    bar = StepProgressBar()
    model = CostlyModule(clock.advance)
    t = trainer([bar], max_steps=4, enable_progress_bar=True,
                logger=TensorBoardLogger(str(tmp_path), name="", version="train"))
    t.fit(model, loader(clock.advance, data_ms=0.0))
    assert bar.train_progress_bar.total == 4 and bar.train_progress_bar.n == 4
    assert bar.train_progress_bar.desc.startswith("train")
    assert "v_num" not in bar.get_metrics(t, model)


def test_progress_never_synchronises_the_device():
    """It reads the host clock only: no device wait, so it cannot slow a step (the timing callbacks own that)."""
    from unittest import mock

    clock = ScriptedClock()
    progress = ProgressCallback(5, warmup=1, stream=io.StringIO(), clock=clock, min_seconds=0.0)
    with mock.patch("torch.cuda.synchronize") as sync, mock.patch("torch.cuda.Event") as event:
        trainer([progress], max_steps=5).fit(CostlyModule(clock.advance), loader(clock.advance, data_ms=0.0))
    assert sync.call_count == 0 and event.call_count == 0 and progress.done == 5


def test_only_rank_zero_prints():
    class Rank1:
        is_global_zero = False

    clock, out = ScriptedClock(), io.StringIO()
    progress = ProgressCallback(3, stream=out, clock=clock, min_seconds=0.0)
    progress.setup(Rank1(), None, "fit")
    for _ in range(3):
        clock.advance(5000)
        progress.tick()
    assert progress.done == 3 and out.getvalue() == ""
