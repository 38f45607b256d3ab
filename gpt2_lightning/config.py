"""GPT-2 model configuration and the named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class GPTConfig:
    """Shape of a GPT-2 model. Defaults are GPT-2 small (124M), exactly as OpenAI released it."""

    n_layer: int = 12  # transformer blocks; GPT-2 small has 12
    n_head: int = 12  # attention heads per block; head size = n_embd / n_head = 64 for every GPT-2
    n_embd: int = 768  # residual stream width
    block_size: int = 1024  # longest sequence the position table covers (GPT-2 was trained at 1024)
    vocab_size: int = 50257  # GPT-2 BPE: 50,000 merges + 256 bytes + <|endoftext|>; padded internally, see below
    dropout: float = 0.0  # 0 for profiling and fine-tuning; OpenAI pre-trained with 0.1
    bias: bool = True  # GPT-2 has biases in Linear and LayerNorm; False is slightly faster and as good
    layer_norm_eps: float = 1e-5  # GPT-2's (and torch's) LayerNorm epsilon
    vocab_multiple: int = 64  # embedding rows are padded to a multiple of this: 50304 matmuls run ~faster than 50257
    activation_checkpointing: bool = False  # recompute each block in backward (torch.utils.checkpoint): less memory

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "vocab_multiple"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding / output matrix: vocab_size rounded up to vocab_multiple."""
        m = self.vocab_multiple
        return (self.vocab_size + m - 1) // m * m

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_name(cls, name: str, **overrides: object) -> "GPTConfig":
        """A preset by name (``tiny``, ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``), with field overrides.

        Overrides set to ``None`` are ignored, so CLI flags left unset can be passed straight through.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown model {name!r}; valid names: {', '.join(PRESETS)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {unknown}; valid fields: {sorted(fields)}")
        values = dict(PRESETS[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# Presets: the four OpenAI GPT-2 checkpoints, plus `tiny` for CPU tests and quick runs.
PRESETS: dict[str, dict[str, object]] = {
    # 4 layers x 128 wide, 1k tokens: a full train step at B2xT64 runs in milliseconds on one CPU core.
    "tiny": dict(n_layer=4, n_head=4, n_embd=128, block_size=1024, vocab_size=1024),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M parameters
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}
MODEL_NAMES: tuple[str, ...] = tuple(PRESETS)
