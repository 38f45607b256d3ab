"""The analytic FLOPs per token against what PyTorch itself counts in a real forward and backward pass."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from gpt2_lightning import GPT, GPTConfig
from gpt2_lightning.flops import inference_flops_per_token, train_flops_per_token


def counted_flops(config: GPTConfig, seq_len: int, batch: int = 1) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs of one batch, counted by FlopCounterMode on the meta device."""
    with torch.device("meta"):
        model = GPT(config)
        idx = torch.zeros(batch, seq_len, dtype=torch.long)
    # the math backend is plain matmuls, which every torch counts; the fused kernels count the same FLOPs
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as forward:
        logits = model(idx)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as both:
        logits = model(idx)
        logits.float().sum().backward()
    return forward.get_total_flops(), both.get_total_flops()


@pytest.mark.parametrize("name", ["tiny", "gpt2"])
@pytest.mark.parametrize("seq_len", [64, 1024])
def test_flops_per_token_match_pytorchs_count(name, seq_len):
    config = GPTConfig.from_name(name)
    if seq_len > config.block_size:
        pytest.skip("longer than the model's context")
    forward, both = counted_flops(config, seq_len)
    assert train_flops_per_token(config, seq_len) * seq_len == pytest.approx(both, rel=0.01)
    assert inference_flops_per_token(config, seq_len) * seq_len == pytest.approx(forward, rel=0.01)


@pytest.mark.parametrize("name", ["tiny", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_the_gpt2_workloads_counted_flops_sit_beside_the_formula(name):
    """profile.py quotes 6N + 12LdT for GPT-2 and shows FlopCounterMode's count (of a whole training step, through
    the LightningModule, on the meta device) beside it. They differ, exactly, where the formula and the counter
    disagree on what a FLOP is: the counter counts the padded vocabulary's extra output rows (6 (Vp - V) d per token)
    and no work for the biases and layer norms that N holds (6 per parameter per token in the formula). Both count
    the whole T x T attention score matrix, although causal masking leaves half of it unused."""
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.workload import GPT2Workload, flops_fields

    B, T = 1, 1024
    cfg = ProfileConfig(accelerator="cpu", model=name, batch_size=B, seq_len=T)
    fields = flops_fields(cfg, "train")
    c = GPTConfig.from_name(name)
    d, L = c.n_embd, c.n_layer
    assert fields["flops_source"] == "6N + 12LdT (PaLM appendix B)"
    assert fields["flops_per_step"] == train_flops_per_token(c, T) * B * T
    # per block: two layer norms (weight and bias), biases of c_attn (3d), attn c_proj (d), c_fc (4d), mlp c_proj (d)
    not_matmul = L * (2 * 2 * d + 3 * d + d + 4 * d + d) + 2 * d  # and ln_f
    padded_rows = c.padded_vocab_size - c.vocab_size
    expected_gap = 6 * B * T * (padded_rows * d - not_matmul)
    assert fields["flops_counted_per_step"] - fields["flops_per_step"] == expected_gap
    assert fields["flops_counted_per_step"] == pytest.approx(fields["flops_per_step"], rel=0.01)  # within 1%
    inference = flops_fields(cfg, "inference")
    assert inference["flops_counted_per_step"] * 3 == fields["flops_counted_per_step"]
    assert GPT2Workload(cfg).measured_flops()["counted_on"] == "meta"
