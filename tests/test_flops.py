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
