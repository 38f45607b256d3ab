import math

import pytest
import torch

from gpt2_lightning import GPT, GPTConfig
from gpt2_lightning.flops import num_params, train_flops_per_token


def test_logits_shape_excludes_padding(tiny_config):
    cfg = GPTConfig.from_name("tiny", vocab_size=1000)  # padded to 1024 inside
    model = GPT(cfg)
    idx = torch.randint(0, 1000, (2, 16))
    logits = model(idx)
    assert logits.shape == (2, 16, 1000)
    logits, loss = model(idx, idx)
    assert logits.shape == (2, 16, 1000)
    # the loss is over the true vocabulary: equal to cross-entropy on the unpadded logits
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 1000), idx.reshape(-1))
    torch.testing.assert_close(loss, ref)
    assert model.transformer.wte.weight.shape[0] == 1024


def test_initial_loss_near_uniform(tiny_config):
    torch.manual_seed(0)
    model = GPT(tiny_config)
    idx = torch.randint(0, tiny_config.vocab_size, (4, 32))
    targets = torch.randint(0, tiny_config.vocab_size, (4, 32))  # independent of the inputs: nothing to learn yet
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(tiny_config.vocab_size)) < 0.5


def test_tied_embeddings_and_init(tiny_config):
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", n_layer=8, n_embd=256, n_head=4))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    expected = 0.02 / math.sqrt(2 * 8)
    assert abs(model.transformer.h[0].mlp.c_proj.weight.std().item() - expected) < 0.1 * expected
    assert torch.all(model.transformer.h[0].attn.c_attn.bias == 0)


def test_param_count_matches_analytic(tiny_config):
    for cfg in (tiny_config, GPTConfig.from_name("tiny", bias=False), GPTConfig.from_name("tiny", vocab_size=777)):
        model = GPT(cfg)
        assert model.num_params() == num_params(cfg)
        assert model.num_params(non_embedding=False) == num_params(cfg, non_embedding=False)


def test_gpt2_small_param_count_and_flops_on_meta():
    cfg = GPTConfig.from_name("gpt2")
    with torch.device("meta"):  # shapes only: no memory, no time
        model = GPT(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == 124_475_904  # 124M with the 50304-row padded embedding (nanoGPT's figure)
    assert model.num_params() == num_params(cfg)
    # 6N + 12 L d T with N the unpadded non-embedding count
    n_useful = num_params(cfg) - 47 * 768
    assert train_flops_per_token(cfg, 1024) == 6 * n_useful + 12 * 12 * 768 * 1024


def test_builds_on_the_current_device():
    with torch.device("meta"):
        model = GPT(GPTConfig.from_name("tiny"))
    assert all(p.device.type == "meta" for p in model.parameters())


def test_sequence_longer_than_block_rejected():
    model = GPT(GPTConfig.from_name("tiny", block_size=8))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
