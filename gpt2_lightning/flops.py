"""Analytic FLOPs of GPT-2 (the devices' peak FLOP/s and MFU are in ``callbacks.devices``).

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


MATMUL_PARTS = ("attention projections", "attention kernel", "MLP", "output head")  # whose FLOPs are matmul work


def part_train_flops_per_token(config: GPTConfig, seq_len: int) -> dict[str, float]:
    """``train_flops_per_token`` split over the model's parts (``module_parts.GPT2_PARTS``): each 6N term goes to the
    part that holds those parameters, and 12·L·d·T to the attention kernel; they add up to the whole exactly.
    Embedding lookups, residual adds and the loss do no work counted in 6N (the tied token table's FLOPs are the output
    head's matmul); the layer norms' share is 6 per parameter by the formula, not matmul work (``MATMUL_PARTS``)."""
    d, L = config.n_embd, config.n_layer
    b = 1 if config.bias else 0
    ln = d * (1 + b)
    return {
        "attention projections": 6.0 * L * (d * 3 * d + 3 * d * b + d * d + d * b),
        "attention kernel": 12.0 * L * d * seq_len,
        "MLP": 6.0 * L * (d * 4 * d + 4 * d * b + 4 * d * d + d * b),
        "layer norms": 6.0 * (2 * L + 1) * ln,
        "output head": 6.0 * config.vocab_size * d,
        "embeddings": 0.0, "residual adds": 0.0, "loss": 0.0, "other model code": 0.0,
    }
