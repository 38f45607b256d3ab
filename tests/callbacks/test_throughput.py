from unittest import mock

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks import PhaseTimingCallback, Throughput, ThroughputCallback
from tests.helpers import RecordingLogger, ScriptedClock, trainer


def test_rates_use_elapsed_time_of_median_step():
    acc = Throughput(peak_tflops=100.0)
    for ms in (20.0, 10.0, 30.0):  # median 20 ms
        acc.update(ms, tokens=8 * 1024, flops=2e12)
    out = acc.compute()
    assert out["tokens_per_sec"] == pytest.approx(8 * 1024 / 0.020)
    assert out["tflops"] == pytest.approx(2e12 / 0.020 / 1e12)
    assert out["mfu_pct"] == pytest.approx(100.0 * 100.0 / 100.0)


def test_per_step_rates_and_unknown_peak():
    acc = Throughput(peak_tflops=None)
    rates = acc.update(50.0, tokens=1000, flops=1e12)
    assert rates["tokens_per_sec"] == pytest.approx(20000.0)
    assert rates["tflops"] == pytest.approx(20.0)
    assert rates["mfu_pct"] is None
    assert Throughput().compute() == {"tokens_per_sec": None, "samples_per_sec": None, "tflops": None, "mfu_pct": None}


def test_rate_is_each_steps_own_tokens_over_its_own_time():
    """A short last batch is counted with its own tokens: never the first batch's shape assumed for every step."""
    acc = Throughput()
    acc.update(10.0, tokens=1000)  # 100k tok/s
    acc.update(10.0, tokens=1000)
    acc.update(5.0, tokens=250)  # a short last batch: 50k tok/s
    assert acc.compute()["tokens_per_sec"] == pytest.approx(100_000.0)
    acc.update(5.0, tokens=250)
    acc.update(5.0, tokens=250)
    assert acc.compute()["tokens_per_sec"] == pytest.approx(50_000.0)  # median of 100k, 100k, 50k, 50k, 50k


# ---------------------------------------------------------------- what a batch holds: tokens, or samples
class _MLP(L.LightningModule):
    """A model of features, not tokens: each step spends exactly 20 ms on the scripted clock."""

    def __init__(self, spend) -> None:
        super().__init__()
        self.spend = spend
        self.layer = torch.nn.Linear(64, 1)

    def training_step(self, batch, batch_idx):
        self.spend(20.0)
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.layer(x.float()).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(batches, **throughput_kw):
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=0)
    throughput = ThroughputCallback(timing, **throughput_kw)
    logger = RecordingLogger()
    with mock.patch("time.perf_counter", clock):
        trainer([timing, throughput], max_epochs=1, logger=logger, log_every_n_steps=1000).fit(_MLP(clock.advance),
                                                                                             batches)
    logged = {k for _, m in logger.logged for k in m if k.startswith("throughput/")}
    return throughput.summary(), logged


def test_features_count_samples_not_tokens():
    """An MLP on batches of shape (32, 64): 32 samples per 20 ms step, 1600 samples/s; no tokens/s (the old count
    took 32 x 64 features for tokens and reported 102,400 tokens/s)."""
    data = DataLoader(TensorDataset(torch.randn(96, 64)), batch_size=32)
    summary, logged = _fit(data)
    assert summary["tokens_per_sec"] is None
    assert summary["samples_per_sec"] == pytest.approx(32 / 0.020)
    assert "throughput/samples_per_sec" in logged and "throughput/tokens_per_sec" not in logged


def test_token_ids_count_tokens():
    """A 2-D integer batch is token ids: B x T tokens per step, and samples/s beside it in the summary."""
    data = DataLoader(TensorDataset(torch.randint(0, 100, (12, 64))), batch_size=4)
    summary, logged = _fit(data)
    assert summary["tokens_per_sec"] == pytest.approx(4 * 64 / 0.020)
    assert summary["samples_per_sec"] == pytest.approx(4 / 0.020)
    assert "throughput/tokens_per_sec" in logged and "throughput/samples_per_sec" not in logged


def test_user_says_what_a_batch_holds():
    """batch_size_fn / length_fn, as in Lightning's ThroughputMonitor: padded sequences of features whose real
    length the user knows (here 10 real positions of each 64-long row)."""
    data = DataLoader(TensorDataset(torch.randn(96, 64)), batch_size=32)
    summary, logged = _fit(data, batch_size_fn=lambda b: b[0].shape[0], length_fn=lambda b: b[0].shape[0] * 10)
    assert summary["tokens_per_sec"] == pytest.approx(32 * 10 / 0.020)
    assert summary["samples_per_sec"] == pytest.approx(32 / 0.020)
    assert "throughput/tokens_per_sec" in logged
