"""Small LightningModules and DataModules that tests profile through ``--module path/to/own_models.py:CLASS``.

TinyLM's FLOPs and parameters are easy to count by hand: an embedding (no FLOPs), ``layers`` residual blocks of one
d x d Linear each, and a d x vocab head without bias.
"""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.fc(x))


class TinyLM(L.LightningModule):
    def __init__(self, vocab: int = 64, width: int = 16, layers: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(layers))
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"])
        return nn.functional.cross_entropy(logits.flatten(0, 1), batch["input_ids"].flatten())

    def predict_step(self, batch, batch_idx):
        return self(batch["input_ids"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class TokenData(L.LightningDataModule):
    """Dict batches of token ids; the study passes batch_size, seq_len and num_batches by name."""

    def __init__(self, vocab: int = 64, batch_size: int = 4, seq_len: int = 8, num_batches: int = 1) -> None:
        super().__init__()
        self.vocab, self.batch_size, self.seq_len, self.num_batches = vocab, batch_size, seq_len, num_batches

    def setup(self, stage):  # the dataset is made here, as DataModules usually do
        ids = torch.randint(0, self.vocab, (self.num_batches * self.batch_size, self.seq_len))
        self.rows = [{"input_ids": row} for row in ids]

    def train_dataloader(self):
        return DataLoader(self.rows, batch_size=self.batch_size)


class OwnFlops(TinyLM):
    """Says its own FLOPs (a made-up 1000 per token forward): they are the ones used, FlopCounterMode's beside."""

    def flops_per_batch(self, batch_size, seq_len, training=True):
        return 1000.0 * batch_size * seq_len * (3 if training else 1)


class SlowInit(TinyLM):
    """Its constructor sleeps ``sleep_ms``: time spent before any Trainer exists."""

    def __init__(self, sleep_ms: float = 0.0) -> None:
        import time

        time.sleep(sleep_ms / 1000.0)
        super().__init__()


class NoPredict(L.LightningModule):
    """Trains, but has neither predict_step nor forward: inference is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.lin(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader([(torch.ones(4),)] * 8, batch_size=2)


class NoData(TinyLM):
    """No dataloader of its own: needs --datamodule."""


class NotAModule:
    pass


class Strict(TinyLM):
    def __init__(self, width: int = 16) -> None:
        if width % 8:
            raise ValueError(f"width must be a multiple of 8, got {width}")
        super().__init__(width=width)
