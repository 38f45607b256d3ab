import pytest

from callbacks import Throughput
from gpt2_lightning.flops import chip_of, peak_tflops


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


@pytest.mark.parametrize(
    "name, chip",
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA H200 NVL", "h200-nvl"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA A100 80GB PCIe", "a100"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA A10G", "a10"),
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("Tesla T4", None),
        ("AMD EPYC 7763", None),
    ],
)
def test_chip_lookup(name, chip):
    assert chip_of(name) == chip


def test_peak_by_precision():
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16-mixed") == pytest.approx(989.4)
    assert peak_tflops("NVIDIA H100 80GB HBM3", "32-true") == pytest.approx(66.9)
    assert peak_tflops("NVIDIA H100 80GB HBM3", "32-true", allow_tf32=True) == pytest.approx(494.7)
    assert peak_tflops("NVIDIA H100 80GB HBM3", "tf32") == pytest.approx(494.7)
    assert peak_tflops("NVIDIA H200", "16-mixed") == pytest.approx(989.4)
    assert peak_tflops("NVIDIA H100 80GB HBM3", "64-true") is None
    assert peak_tflops("cpu", "bf16-mixed") is None
