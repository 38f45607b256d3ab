"""Our GPT-2 loads a transformers GPT2LMHeadModel state dict and gives the same logits (fp32, eval mode)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from gpt2_lightning import GPT, GPTConfig  # noqa: E402


def _hf_model(cfg: GPTConfig):
    hf_cfg = transformers.GPT2Config(
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, n_positions=cfg.block_size,
        vocab_size=cfg.vocab_size, layer_norm_epsilon=cfg.layer_norm_eps, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    return transformers.GPT2LMHeadModel(hf_cfg).eval()


@pytest.mark.parametrize(
    "shape",
    [
        dict(n_layer=2, n_head=4, n_embd=64, vocab_size=1000, block_size=64),  # vocabulary padded to 1024
        dict(n_layer=3, n_head=6, n_embd=96, vocab_size=1024, block_size=128),  # no padding
        dict(n_layer=1, n_head=2, n_embd=128, vocab_size=50257, block_size=32),  # GPT-2's own vocabulary
    ],
)
def test_logits_match_transformers(shape):
    torch.manual_seed(0)
    cfg = GPTConfig(**shape)
    hf = _hf_model(cfg)
    ours = GPT.from_hf_state_dict(hf.state_dict(), cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.block_size))
    with torch.no_grad():
        theirs = hf(idx).logits
        mine = ours(idx)
    assert mine.shape == theirs.shape == (2, cfg.block_size, cfg.vocab_size)
    rel = ((mine - theirs).norm() / theirs.norm()).item()
    assert rel < 1e-4, rel
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())


def test_loss_matches_transformers():
    torch.manual_seed(1)
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=64, vocab_size=500, block_size=32)
    hf = _hf_model(cfg)
    ours = GPT.from_hf_state_dict(hf.state_dict(), cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, 32))
    with torch.no_grad():
        hf_loss = hf(idx, labels=idx).loss  # HF shifts labels inside
        _, loss = ours(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(loss, hf_loss, rtol=1e-5, atol=1e-5)


def test_mismatched_state_dict_rejected():
    cfg = GPTConfig(n_layer=1, n_head=2, n_embd=64, vocab_size=100, block_size=16)
    sd = _hf_model(cfg).state_dict()
    with pytest.raises(ValueError):
        GPT.from_hf_state_dict(sd, GPTConfig(n_layer=2, n_head=2, n_embd=64, vocab_size=100, block_size=16))
    with pytest.raises(ValueError):
        GPT.from_hf_state_dict(sd, GPTConfig(n_layer=1, n_head=2, n_embd=64, vocab_size=101, block_size=16))
