"""Right numbers under real training: accumulation, checkpoints, validation, manual optimisation, short batches.

Every test plants known costs on a scripted clock, so attribution is checked exactly, not within a tolerance.
"""

from unittest import mock

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from callbacks import PhaseTimingCallback, ThroughputCallback
from callbacks.loss_history import LossHistory
from tests.helpers import CostlyDataset, CostlyOptimizer, RecordingLogger, ScriptedClock, loader, trainer


class Steady(L.LightningModule):
    """forward / backward / optimizer cost the same on every batch (no warm-up costs: warm-up is counted apart)."""

    def __init__(self, spend, forward_ms=10.0, backward_ms=20.0, optimizer_ms=5.0, validation_ms=4.0) -> None:
        super().__init__()
        self.spend = spend
        self.forward_ms, self.backward_ms, self.optimizer_ms = forward_ms, backward_ms, optimizer_ms
        self.validation_ms = validation_ms
        self.layer = torch.nn.Linear(4, 4)

    def training_step(self, batch, batch_idx):
        self.spend(self.forward_ms)
        return self.layer(batch[0].float()).pow(2).mean()

    def backward(self, loss, *args, **kwargs):
        super().backward(loss, *args, **kwargs)
        self.spend(self.backward_ms)

    def validation_step(self, batch, batch_idx):
        self.spend(self.validation_ms)

    def configure_optimizers(self):
        return CostlyOptimizer(self.parameters(), self.spend, lambda: self.optimizer_ms)


def fit(module, clock, callbacks, data_ms=3.0, length=64, val=None, **kw):
    with mock.patch("time.perf_counter", clock):
        trainer(callbacks, **kw).fit(module, loader(clock.advance, data_ms, length), val)


@pytest.mark.parametrize("k", [2, 3])
def test_accumulation_one_record_per_optimizer_step(k):
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=2)
    logger = RecordingLogger()
    fit(Steady(clock.advance), clock, [timing, ThroughputCallback(timing)], max_steps=7, accumulate_grad_batches=k,
        logger=logger, log_every_n_steps=1000)
    train = [r for r in timing.records if r.stage == "train"]
    assert len(train) == 7 and sum(r.warmup for r in train) == 2  # warm-up counted in optimizer steps
    s = timing.summary()
    expected = dict(data=3.0 * k, forward=10.0 * k, backward=20.0 * k, optimizer=5.0, step=33.0 * k + 5.0)
    for phase, ms in expected.items():
        assert s[phase]["n"] == 5, phase
        assert s[phase]["min_ms"] == pytest.approx(ms) and s[phase]["max_ms"] == pytest.approx(ms), phase
    assert all(r.tokens == k * 2 * 4 and len(r.micro_batches) == k for r in train)  # k x B x T
    rate = k * 2 * 4 / ((33.0 * k + 5.0) / 1000.0)  # k x B x T tokens over the whole optimizer step
    # time/* and throughput/* on the optimizer-step axis, one point per counted step
    steps = [step for step, m in logger.logged if "time/step_ms" in m]
    assert steps == [2, 3, 4, 5, 6]
    thr = [m["throughput/tokens_per_sec"] for _, m in logger.logged if "throughput/tokens_per_sec" in m]
    assert thr == pytest.approx([rate] * 5)


class SlowSave(ModelCheckpoint):
    def __init__(self, clock, ms, **kw):
        super().__init__(**kw)
        self.clock, self.ms = clock, ms

    def _save_checkpoint(self, trainer, filepath):
        self.clock.advance(self.ms)
        super()._save_checkpoint(trainer, filepath)


def test_checkpoint_save_is_its_own_phase_not_the_next_steps_data(tmp_path):
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=1)
    save = SlowSave(clock, 500.0, dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1)
    fit(Steady(clock.advance), clock, [save, timing], max_steps=8, enable_checkpointing=True)
    counted = timing.counted()
    assert [r.phases["data"] for r in counted] == pytest.approx([3.0] * 7)  # never 503
    assert [r.phases["step"] for r in counted] == pytest.approx([38.0] * 7)
    s = timing.summary()
    assert s["checkpoint"]["n"] == 2 and s["checkpoint"]["median_ms"] == pytest.approx(500.0)
    assert s["checkpoint"]["total_ms"] == pytest.approx(1000.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=0-step=3.ckpt", "epoch=0-step=6.ckpt"]
    fit_summary = timing.fit_summary()
    assert fit_summary["checkpoint_ms"] == pytest.approx(1000.0)
    assert fit_summary["steps_ms"] + fit_summary["checkpoint_ms"] <= fit_summary["wall_ms"] + 1e-6
    assert fit_summary["other_ms"] < 5.0  # between the hooks nothing else costs time on a scripted clock


def test_validation_every_n_steps_is_a_window_of_its_own():
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=1)
    val = DataLoader(CostlyDataset(clock.advance, 1.0, length=2), batch_size=None)
    fit(Steady(clock.advance, validation_ms=4.0), clock, [timing], val=val, max_steps=7, val_check_interval=3,
        limit_val_batches=2, check_val_every_n_epoch=None)
    counted = timing.counted()
    assert [r.phases["data"] for r in counted] == pytest.approx([3.0] * 6)
    assert [r.phases["step"] for r in counted] == pytest.approx([38.0] * 6)
    s = timing.summary()
    assert s["validation"]["n"] == 2  # after optimizer steps 3 and 6
    assert s["validation"]["median_ms"] == pytest.approx(2 * (1.0 + 4.0))
    assert "checkpoint" not in s
    f = timing.fit_summary()
    assert f["validation_ms"] == pytest.approx(20.0) and f["steps_pct"] + f["validation_pct"] <= 100.0 + 1e-9


class ManualTwoOptimizers(L.LightningModule):
    """A GAN-like step: two forwards, two backwards, two optimizer steps, each with planted costs."""

    def __init__(self, spend, two: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.spend, self.two = spend, two
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    def training_step(self, batch, batch_idx):
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        for i, (layer, opt) in enumerate(zip((self.a, self.b), opts)):
            self.spend(17.0 if i == 0 else 7.0)  # forward
            loss = layer(batch[0].float()).pow(2).mean()
            self.manual_backward(loss)
            opt.step()  # 10 ms, planted in the optimizer
            opt.zero_grad()
            if not self.two:
                break

    def backward(self, loss, *args, **kwargs):
        super().backward(loss, *args, **kwargs)
        self.spend(20.0)

    def configure_optimizers(self):
        make = lambda layer: CostlyOptimizer(layer.parameters(), self.spend, lambda: 10.0)  # noqa: E731
        return [make(self.a), make(self.b)] if self.two else make(self.a)


@pytest.mark.parametrize("two", [False, True])
def test_manual_optimisation(two):
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=1)
    fit(ManualTwoOptimizers(clock.advance, two), clock, [timing], max_steps=(5 * 2 if two else 5))
    s = timing.summary()
    forward, backward, optimizer = (17.0 + 7.0, 40.0, 20.0) if two else (17.0, 20.0, 10.0)
    for phase, ms in dict(data=3.0, forward=forward, backward=backward, optimizer=optimizer).items():
        assert s[phase]["n"] == 4 and s[phase]["median_ms"] == pytest.approx(ms), (phase, s[phase])
    assert s["step"]["median_ms"] == pytest.approx(3.0 + forward + backward + optimizer)
    assert [r.step for r in timing.records] == [0, 1, 2, 3, 4]  # one step per batch, whatever the optimizers


def test_short_last_batch_counts_its_own_samples():
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=0)
    throughput = ThroughputCallback(timing)
    data = DataLoader(torch.utils.data.TensorDataset(torch.ones(10, 4)), batch_size=4)  # 4, 4, then 2 rows
    module = Steady(clock.advance)
    with mock.patch("time.perf_counter", clock):
        trainer([timing, throughput], max_epochs=1).fit(module, data)
    assert [r.samples for r in timing.records] == [4, 4, 2]  # rows of features: samples, not tokens
    assert [r.tokens for r in timing.records] == [None, None, None]
    rates = throughput.throughput["train"]
    assert rates.samples == [4, 4, 2]


def test_loss_is_logged_on_the_steps_the_logger_writes_and_undivided(tmp_path):
    from gpt2_lightning import GPT2LightningModule, GPTConfig, SyntheticTokenDataModule

    for k in (1, 2):
        logger = RecordingLogger()
        history = LossHistory(every=1, write=False)
        module = GPT2LightningModule(GPTConfig.from_name("tiny"))
        data = SyntheticTokenDataModule(1024, 16, 2, num_batches=10 * k)
        trainer([history], logger=logger, max_steps=10, log_every_n_steps=5, accumulate_grad_batches=k).fit(
            module, data)
        written = {step: m["train/loss"] for step, m in logger.logged if "train/loss" in m}
        kept = {v["step"]: v["loss"] for v in history.values}
        assert sorted(kept) == list(range(10))
        assert sorted(written) == [4, 9]  # Lightning writes step j when (j + 1) % 5 == 0
        for step, loss in written.items():  # the loss of that very step, the mean of its micro-batches
            assert loss == pytest.approx(kept[step], rel=1e-5), (k, step)
        assert 6.0 < kept[0] < 8.0  # about ln(1024): never divided by the accumulation
