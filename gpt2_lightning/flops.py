"""Analytic FLOPs of GPT-2, the dense peak FLOP/s of known accelerators, and MFU.

FLOPs per token follow PaLM (Chowdhery et al. 2022, appendix B) as nanoGPT's ``estimate_mfu`` does: a training step
costs 6N + 12·L·d·T FLOPs per token (N = parameters without the position table, L layers, d width, T the sequence
length actually used); a forward pass is a third of that.
"""

from __future__ import annotations

from gpt2_lightning.config import GPTConfig


def num_params(config: GPTConfig, non_embedding: bool = True) -> int:
    """Parameters of GPT(config) computed from the shapes alone (no model needed); matches ``GPT.num_params``."""
    d, L, V = config.n_embd, config.n_layer, config.padded_vocab_size
    b = 1 if config.bias else 0
    ln = d * (1 + b)
    per_block = (
        2 * ln  # ln_1, ln_2
        + d * 3 * d + 3 * d * b  # c_attn
        + d * d + d * b  # attn c_proj
        + d * 4 * d + 4 * d * b  # c_fc
        + 4 * d * d + d * b  # mlp c_proj
    )
    n = V * d + L * per_block + ln  # wte (tied lm_head), blocks, ln_f
    if not non_embedding:
        n += config.block_size * d
    return n


def train_flops_per_token(config: GPTConfig, seq_len: int) -> float:
    """6N + 12·L·d·T: forward and backward of the matmuls (6N) plus attention scores and values (12·L·d·T)."""
    # N counts the useful vocabulary only: the padding rows are speed, not model (they add ~0.1% of FLOPs).
    n = num_params(config) - (config.padded_vocab_size - config.vocab_size) * config.n_embd
    return 6.0 * n + 12.0 * config.n_layer * config.n_embd * seq_len


def inference_flops_per_token(config: GPTConfig, seq_len: int) -> float:
    """A forward pass is a third of a training step (backward costs twice the forward)."""
    return train_flops_per_token(config, seq_len) / 3.0


# Dense (no structured sparsity) peak TFLOP/s by chip and math precision, from NVIDIA's datasheets.
# "fp32" is plain FP32 on CUDA cores; "tf32" is FP32 on the tensor cores; bf16/fp16 accumulate in FP32.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "h100-sxm": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "h100-pcie": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
    "h100-nvl": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    "h200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},  # same GH100 die and clocks as H100 SXM
    "h200-nvl": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    "a100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "a10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
    "l4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
    "l40s": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0},
    "rtx4090": {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2},
}

# (substrings that must all appear in the lower-cased device name, chip); first match wins, most specific first.
_CHIP_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("h200", "nvl"), "h200-nvl"),
    (("h200",), "h200"),
    (("h100", "nvl"), "h100-nvl"),
    (("h100", "pcie"), "h100-pcie"),
    (("h100",), "h100-sxm"),  # "NVIDIA H100 80GB HBM3" is the SXM part
    (("a100",), "a100"),
    (("l40s",), "l40s"),
    (("a10",), "a10"),  # "NVIDIA A10" and "NVIDIA A10G"; checked after a100
    (("l4",), "l4"),  # checked after l40s
    (("4090",), "rtx4090"),
)


def chip_of(device_name: str) -> str | None:
    """Our chip key for a ``torch.cuda.get_device_name()`` string, or None when the device is not in the table."""
    name = device_name.lower()
    for needles, chip in _CHIP_RULES:
        if all(n in name for n in needles):
            return chip
    return None


def math_precision(precision: str, allow_tf32: bool) -> str | None:
    """The matmul precision a Lightning precision setting runs at: fp32, tf32, bf16 or fp16 (None if other)."""
    if precision.startswith("bf16"):
        return "bf16"
    if precision.startswith("16"):
        return "fp16"
    if precision.startswith("32") or precision == "tf32":
        return "tf32" if allow_tf32 or precision == "tf32" else "fp32"
    return None


def peak_tflops(device_name: str, precision: str, allow_tf32: bool = False) -> float | None:
    """Dense peak TFLOP/s of this device at this precision; None when unknown (CPUs included): never a guess."""
    chip = chip_of(device_name)
    mp = math_precision(precision, allow_tf32)
    if chip is None or mp is None:
        return None
    return PEAK_TFLOPS[chip].get(mp)


def mfu_pct(achieved_tflops: float | None, peak: float | None) -> float | None:
    """Model FLOPs utilisation in percent, or None when either figure is unknown."""
    if achieved_tflops is None or not peak:
        return None
    return 100.0 * achieved_tflops / peak
