import pytest

from callbacks import Throughput


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
    assert Throughput().compute() == {"tokens_per_sec": None, "tflops": None, "mfu_pct": None}


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
