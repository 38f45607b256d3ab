"""Data for GPT-2: seeded synthetic tokens, and real tokens from nanoGPT-style token files.

``SyntheticTokenDataModule``: uniformly random ids, the right shape and dtype, too cheap to ever dominate a step.

``TokenFileDataModule``: a data directory holds ``train.bin``, ``val.bin`` and ``meta.json`` (written by
``scripts/prepare_data.py``)::

    {"tokenizer": "bytes", "vocab_size": 256, "dtype": "uint16", "train_tokens": 123, "val_tokens": 45}

Tokens are flat uint16 (uint32 for vocabularies over 65536) arrays, memory-mapped. Training batch ``i`` is a pure
function of (seed, i): B random windows of seq_len + 1 tokens. So the data order is seeded, and a run resumed from
a checkpoint at step k sees exactly the batches an uninterrupted run would have seen from step k on (the position is
saved in the checkpoint through the DataModule's state_dict).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from gpt2_lightning.token_files import DataError, open_tokens, read_meta  # noqa: F401 - DataError: data.DataError


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


# ---------------------------------------------------------------------------------------------------- real tokens
def _window_batch(tokens: np.memmap, seq_len: int, batch_size: int, seed: int, index: int):
    """Batch ``index``: batch_size random windows of seq_len + 1 tokens, from a generator seeded by (seed, index)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    starts = torch.randint(0, len(tokens) - seq_len, (batch_size,), generator=g).tolist()
    windows = torch.from_numpy(np.stack([tokens[s : s + seq_len + 1].astype(np.int64) for s in starts]))
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()  # (B, T) inputs, (B, T) next tokens


class _TrainWindows(IterableDataset):
    """An endless stream of batches start, start + 1, ... (each process takes every world_size-th); the Trainer's
    max_steps ends it."""

    def __init__(self, data_dir: Path, meta: dict, seq_len: int, batch_size: int, seed: int, start: int,
                 rank: int = 0, world_size: int = 1) -> None:
        self.data_dir, self.meta, self.seq_len, self.batch_size = data_dir, meta, seq_len, batch_size
        self.seed, self.start, self.rank, self.world_size = seed, start, rank, world_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        tokens = open_tokens(self.data_dir, "train", self.meta)  # opened here: works in worker processes too
        index = self.start * self.world_size + self.rank
        while True:
            yield _window_batch(tokens, self.seq_len, self.batch_size, self.seed, index)
            index += self.world_size


class _ValWindows(Dataset):
    """The same ``num_batches`` validation batches every time: losses are comparable across the run."""

    def __init__(self, data_dir: Path, meta: dict, seq_len: int, batch_size: int, seed: int, num_batches: int) -> None:
        self.tokens = open_tokens(data_dir, "val", meta)
        self.seq_len, self.batch_size, self.seed, self.num_batches = seq_len, batch_size, seed, num_batches

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, i: int):
        return _window_batch(self.tokens, self.seq_len, self.batch_size, self.seed + 7919, i)


class TokenFileDataModule(L.LightningDataModule):
    """Train/val token files of ``data_dir`` as random windows; seeded, and exactly resumable."""

    def __init__(self, data_dir: str | Path, seq_len: int, batch_size: int, seed: int = 1337,
                 val_batches: int = 8) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.meta = read_meta(self.data_dir)
        self.seq_len, self.batch_size, self.seed, self.val_batches = seq_len, batch_size, seed, val_batches
        self.vocab_size: int = self.meta["vocab_size"]
        self._start = 0  # index of the next training batch; restored from checkpoints

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        data = _TrainWindows(self.data_dir, self.meta, self.seq_len, self.batch_size, self.seed, self._start,
                             rank, world)
        return DataLoader(data, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        data = _ValWindows(self.data_dir, self.meta, self.seq_len, self.batch_size, self.seed, self.val_batches)
        return DataLoader(data, batch_size=None, shuffle=False, num_workers=0)

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    # the position in the stream travels with checkpoints, so a resumed run continues the same data order
    def state_dict(self) -> dict[str, Any]:
        trainer = self.trainer
        consumed = trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else self._start
        return {"next_train_batch": consumed, "seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._start = int(state_dict.get("next_train_batch", 0))
