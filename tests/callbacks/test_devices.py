"""Peak FLOP/s by device name: whole-word matching, datasheet values written out here, unknown parts give null."""

import pytest

from callbacks.devices import chip_of, mfu_pct, peak_lookup, peak_tflops


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
        ("NVIDIA L40", "l40"),  # not the L4 (substring matching got this wrong)
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA A10", "a10"),
        ("NVIDIA A10G", None),  # another part than the A10: no datasheet peak in the table
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", None),  # not the desktop card's clocks
        ("NVIDIA RTX A1000 6GB Laptop GPU", None),  # not an A100
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", None),  # a slice of the chip
        ("NVIDIA H100 80GB HBM3 MIG 3g.40gb", None),
        ("Tesla T4", None),
        ("AMD EPYC 7763", None),
    ],
)
def test_chip_lookup_whole_words(name, chip):
    assert chip_of(name) == chip


# NVIDIA datasheets, dense (the sparsity figures halved): H100 SXM5 FP32 67 (66.9) TF32 989/2 BF16 1979/2 FP8 3958/2;
# L40 FP32 90.5, BF16 362.1/2; L4 BF16 242/2; A100 FP32 19.5, TF32 156, BF16 312
@pytest.mark.parametrize(
    "name, precision, matmul, peak",
    [
        ("NVIDIA H100 80GB HBM3", "bf16-mixed", "highest", 989.4),
        ("NVIDIA H100 80GB HBM3", "bf16-true", "highest", 989.4),
        ("NVIDIA H100 80GB HBM3", "16-mixed", "highest", 989.4),
        ("NVIDIA H100 80GB HBM3", "32-true", "highest", 66.9),
        ("NVIDIA H100 80GB HBM3", "32-true", "high", 494.7),  # TF32 tensor cores
        ("NVIDIA H100 80GB HBM3", "32-true", "medium", 989.4),  # "medium" lets fp32 matmuls run in bf16
        ("NVIDIA H100 80GB HBM3", "tf32", "highest", 494.7),
        ("NVIDIA H100 80GB HBM3", "fp8", "highest", 1978.9),
        ("NVIDIA H200", "16-mixed", "highest", 989.4),
        ("NVIDIA L40", "bf16-mixed", "highest", 181.0),
        ("NVIDIA L4", "bf16-mixed", "highest", 121.0),
        ("NVIDIA A100-SXM4-80GB", "32-true", "highest", 19.5),
        ("NVIDIA A100-SXM4-80GB", "tf32", "highest", 156.0),
        ("NVIDIA A100-SXM4-80GB", "bf16-mixed", "highest", 312.0),
    ],
)
def test_datasheet_peaks(name, precision, matmul, peak):
    assert peak_tflops(name, precision, matmul) == peak


@pytest.mark.parametrize(
    "name, precision, reason",
    [
        ("", "bf16-mixed", "no peak for CPUs"),
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", "bf16-mixed", "MIG slice: peak unknown"),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", "bf16-mixed", "laptop part: peak unknown"),
        ("Tesla T4", "bf16-mixed", "no peak FLOP/s known for Tesla T4"),
        ("NVIDIA A100-SXM4-80GB", "fp8", "no fp8 peak known"),  # Ampere has no FP8 tensor cores
        ("NVIDIA H100 80GB HBM3", "64-true", "no 64-true peak known"),
    ],
)
def test_unknown_peaks_say_why(name, precision, reason):
    peak, why = peak_lookup(name, precision)
    assert peak is None and why.startswith(reason), why


def test_mfu():
    assert mfu_pct(494.7, 989.4) == pytest.approx(50.0)
    assert mfu_pct(None, 989.4) is None and mfu_pct(100.0, None) is None
