"""Dense peak FLOP/s of known accelerators, and MFU against them.

A device name (``torch.cuda.get_device_name()``) is matched on whole words, most specific rule first: "NVIDIA L40"
is not an L4, "NVIDIA RTX A1000 6GB Laptop GPU" is not an A100. Laptop parts (their clocks follow the laptop's power
limit), MIG slices (a fraction of the chip) and anything not in the table have no peak: MFU is then null with the
reason, never a guess.
"""

from __future__ import annotations

import re

# Dense (no structured sparsity) peak TFLOP/s by chip and math precision, from NVIDIA's datasheets (the starred
# sparsity figures halved). "fp32" is plain FP32 on CUDA cores; "tf32" is FP32 inputs on the tensor cores; bf16, fp16
# and fp8 accumulate in FP32.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "h100-sxm": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},
    "h100-pcie": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0, "fp8": 1513.0},
    "h100-nvl": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5, "fp8": 1670.5},
    "h200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},  # H100 SXM's die and clocks
    "h200-nvl": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5, "fp8": 1670.5},
    "a100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "a10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
    "l4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0, "fp8": 242.5},
    "l40": {"fp32": 90.5, "tf32": 90.5, "bf16": 181.0, "fp16": 181.0, "fp8": 362.0},
    "l40s": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0, "fp8": 733.0},
    "rtx4090": {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2, "fp8": 330.3},
}

# (words that must all be in the name, chip); first match wins, so the more specific rules come first
_CHIP_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("h200", "nvl"), "h200-nvl"),
    (("h200",), "h200"),
    (("h100", "nvl"), "h100-nvl"),
    (("h100", "pcie"), "h100-pcie"),
    (("h100",), "h100-sxm"),  # "NVIDIA H100 80GB HBM3" is the SXM part
    (("a100",), "a100"),  # SXM4 and PCIe have the same dense peaks
    (("l40s",), "l40s"),
    (("l40",), "l40"),
    (("l4",), "l4"),
    (("a10",), "a10"),  # "NVIDIA A10"; the A10G is another part, not in the table
    (("rtx", "4090"), "rtx4090"),
)
# words that make a name's peak unknown even when its chip is in the table, and why
_UNKNOWN_WORDS = {
    "mig": "MIG slice: peak unknown (a fraction of the chip)",
    "laptop": "laptop part: peak unknown (its clocks follow the laptop's power limit)",
    "mobile": "mobile part: peak unknown (its clocks follow the power limit)",
}

PRECISION_KEYS = ("fp32", "tf32", "bf16", "fp16", "fp8")


def _words(device_name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", device_name.lower())) - {""}


def chip_of(device_name: str) -> str | None:
    """Our chip key for a device name, or None when the device is not in the table (or has no known peak)."""
    return _lookup_chip(device_name)[0]


def _lookup_chip(device_name: str) -> tuple[str | None, str | None]:
    words = _words(device_name)
    for word, reason in _UNKNOWN_WORDS.items():
        if word in words:
            return None, reason
    for needles, chip in _CHIP_RULES:
        if all(n in words for n in needles):
            return chip, None
    return None, f"no peak FLOP/s known for {device_name or 'this device'}"


def math_precision(precision: str, float32_matmul_precision: str = "highest") -> str | None:
    """The matmul precision a setting runs at: fp32, tf32, bf16, fp16 or fp8 (None if none of these).

    ``precision`` is a Lightning precision string (``32-true``, ``bf16-mixed``, ...), ``tf32`` or ``fp8``; for fp32
    weights ``float32_matmul_precision`` (``torch.get_float32_matmul_precision()``) decides: "high" runs matmuls on
    TF32 tensor cores, "medium" on bf16 ones.
    """
    if precision in PRECISION_KEYS:
        return precision
    if precision.startswith("bf16"):
        return "bf16"
    if precision.startswith("16"):
        return "fp16"
    if precision.startswith("32"):
        return {"high": "tf32", "medium": "bf16"}.get(float32_matmul_precision, "fp32")
    if precision.startswith("transformer-engine"):
        return "fp8"
    return None


def peak_lookup(device_name: str, precision: str, float32_matmul_precision: str = "highest"
                ) -> tuple[float | None, str | None]:
    """(dense peak TFLOP/s, None) or (None, why it is unknown)."""
    if device_name.strip().lower() in ("", "cpu"):
        return None, "no peak for CPUs"
    chip, reason = _lookup_chip(device_name)
    if chip is None:
        return None, reason
    key = math_precision(precision, float32_matmul_precision)
    if key is None or key not in PEAK_TFLOPS[chip]:
        return None, f"no {key or precision} peak known for {device_name}"
    return PEAK_TFLOPS[chip][key], None


def peak_tflops(device_name: str, precision: str, float32_matmul_precision: str = "highest") -> float | None:
    """Dense peak TFLOP/s of this device at this precision (a Lightning precision string, ``tf32`` or ``fp8``);
    None when unknown (CPUs, laptop parts, MIG slices included): never a guess."""
    return peak_lookup(device_name, precision, float32_matmul_precision)[0]


def mfu_pct(achieved_tflops: float | None, peak: float | None) -> float | None:
    """Model FLOPs utilisation in percent, or None when either figure is unknown."""
    if achieved_tflops is None or not peak:
        return None
    return 100.0 * achieved_tflops / peak
