"""Synthetic token data: seeded, the right shape and dtype, and too cheap to ever dominate a step."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset


class _BatchPool(Dataset):
    """``num_batches`` items, each a whole batch ``(inputs, targets)``, both (B, T) int64, cycling over a pool.

    Batches are made once, up front: fetching one is an index into a tensor, no per-sample collate.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, num_batches: int) -> None:
        self.inputs, self.targets, self.num_batches = inputs, targets, num_batches

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < self.num_batches:
            raise IndexError(i)
        j = i % self.inputs.size(0)
        return self.inputs[j], self.targets[j]  # (B, T), (B, T)


class SyntheticTokenDataModule(L.LightningDataModule):
    """Uniformly random token ids, seeded: two modules with the same seed yield the same batches.

    Each item is a (inputs, targets) pair of shape (batch_size, seq_len), targets being the next tokens of the same
    random sequence. ``pool_batches`` distinct batches are made and reused, so memory stays small for long runs.
    On CUDA the pool is pinned, so each batch moves to the device by one asynchronous copy.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        batch_size: int,
        seed: int = 1337,
        num_batches: int = 1000,
        pool_batches: int = 16,
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("seq_len", seq_len), ("batch_size", batch_size),
                            ("num_batches", num_batches), ("pool_batches", pool_batches)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.vocab_size, self.seq_len, self.batch_size = vocab_size, seq_len, batch_size
        self.seed, self.num_batches, self.pool_batches = seed, num_batches, pool_batches
        self._pool: _BatchPool | None = None

    def batch_pool(self, pin_memory: bool = False) -> _BatchPool:
        """The batches, as an indexable pool (also for plain training loops that use no DataLoader)."""
        g = torch.Generator().manual_seed(self.seed)
        n = min(self.pool_batches, self.num_batches)
        seqs = torch.randint(0, self.vocab_size, (n, self.batch_size, self.seq_len + 1), generator=g)  # (n, B, T+1)
        inputs = seqs[..., :-1].contiguous()  # (n, B, T)
        targets = seqs[..., 1:].contiguous()  # (n, B, T): the next token at each position
        if pin_memory:  # page-locked: the copy to the GPU is one asynchronous DMA
            inputs, targets = inputs.pin_memory(), targets.pin_memory()
        return _BatchPool(inputs, targets, self.num_batches)

    def _on_cuda(self) -> bool:
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def setup(self, stage: str) -> None:
        if self._pool is None:
            self._pool = self.batch_pool(pin_memory=self._on_cuda())

    def _loader(self) -> DataLoader:
        if self._pool is None:
            self._pool = self.batch_pool(pin_memory=self._on_cuda())
        # batch_size=None: the dataset already yields whole batches; in order, so the token stream is seeded
        return DataLoader(self._pool, batch_size=None, shuffle=False, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()
