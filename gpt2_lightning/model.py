"""GPT-2 in plain torch.nn, exactly as OpenAI's, in the style of nanoGPT's model.py.

No Lightning import here: the model is usable from any training loop. Parameters are allocated on whatever device is
current (``with torch.device("cuda"): GPT(config)``, which is what Lightning's ``configure_model`` does), so a model
built for the GPU never passes through host memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from gpt2_lightning.config import GPTConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        # q, k, v projections for all heads in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()  # batch, sequence length, n_embd
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        # flash / memory-efficient attention where the backend has it; the causal mask is built in, never stored
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2 used the tanh approximation of GELU
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        vocab = config.padded_vocab_size
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(vocab, config.n_embd),  # token embeddings, (padded vocab, C)
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned positions, (block_size, C)
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied input/output embeddings, as in GPT-2
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 * n_layer)."""
        std = 0.02
        residual_std = std / math.sqrt(2 * self.config.n_layer)  # two residual additions per block
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=residual_std if name.endswith("c_proj") else std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position table (the token table counts: it is the LM head too)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, vocab_size) for token ids ``idx`` (B, T); with ``targets`` also the mean cross-entropy."""
        B, T = idx.size()
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, dtype=torch.long, device=idx.device)  # (T,), made where the input lives
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        recompute = self.config.activation_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.transformer.h:
            # activation checkpointing: keep only the block's input; backward reruns its forward (non-reentrant, the
            # kind torch recommends: it works with hooks, keyword arguments and inputs that need no grad)
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)  # (B, T, C)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, padded vocab)
        V = self.config.vocab_size
        if targets is None:
            return logits[..., :V]  # (B, T, V): a view, the padding never leaves the model
        if logits.size(-1) > V:
            # padded columns are not tokens: -inf gives them probability 0, so the loss is over the true vocabulary
            logits[..., V:] = float("-inf")
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits[..., :V], loss

    # ------------------------------------------------------------------ loading OpenAI / transformers weights
    # transformers' GPT-2 stores these as Conv1D, i.e. weight (in, out): transpose into nn.Linear's (out, in).
    _CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    # buffers older transformers versions keep in the state dict; not parameters
    _IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")

    @classmethod
    def from_hf_state_dict(cls, state_dict: Mapping[str, torch.Tensor], config: GPTConfig) -> "GPT":
        """Build from a ``transformers`` GPT2LMHeadModel state dict (same names as ours, Conv1D weights transposed)."""
        model = cls(config)
        ours = model.state_dict()
        theirs = {
            k: v
            for k, v in state_dict.items()
            if not k.endswith(cls._IGNORED_SUFFIXES) and k != "lm_head.weight"  # lm_head is tied to wte
        }
        missing = sorted(set(ours) - set(theirs) - {"lm_head.weight"})
        unexpected = sorted(set(theirs) - set(ours))
        if missing or unexpected:
            raise ValueError(f"state dict does not fit GPT: missing {missing[:5]}, unexpected {unexpected[:5]}")
        with torch.no_grad():
            for key, value in theirs.items():
                if key.endswith(cls._CONV1D_SUFFIXES):
                    value = value.t()
                target = ours[key]
                if key == "transformer.wte.weight":
                    if value.shape != (config.vocab_size, config.n_embd):
                        raise ValueError(f"{key}: shape {tuple(value.shape)} does not fit config {config}")
                    target[: config.vocab_size].copy_(value)
                    target[config.vocab_size :].zero_()  # padding rows: never indexed, masked out of the loss
                    continue
                if value.shape != target.shape:
                    raise ValueError(f"{key}: shape {tuple(value.shape)}, expected {tuple(target.shape)}")
                target.copy_(value)
        return model
