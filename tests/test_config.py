import pytest

from gpt2_lightning import GPTConfig
from gpt2_lightning.config import MODEL_NAMES


def test_presets_have_gpt2_shapes():
    assert MODEL_NAMES == ("tiny", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
    xl = GPTConfig.from_name("gpt2-xl")
    assert (xl.n_layer, xl.n_head, xl.n_embd, xl.block_size, xl.vocab_size) == (48, 25, 1600, 1024, 50257)
    small = GPTConfig.from_name("gpt2")
    assert (small.n_layer, small.n_head, small.n_embd) == (12, 12, 768)
    assert small.layer_norm_eps == 1e-5 and small.bias


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        GPTConfig.from_name("gpt3")
    for name in MODEL_NAMES:
        assert name in str(e.value)


def test_overrides_and_none_passthrough():
    c = GPTConfig.from_name("gpt2", n_layer=2, n_head=None)
    assert c.n_layer == 2 and c.n_head == 12


def test_padded_vocab_is_multiple_of_64():
    c = GPTConfig.from_name("gpt2")
    assert c.padded_vocab_size == 50304
    assert GPTConfig.from_name("tiny", vocab_size=1000).padded_vocab_size == 1024


def test_invalid_shapes_rejected():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="positive"):
        GPTConfig(n_layer=0)
