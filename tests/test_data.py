import torch

from gpt2_lightning import SyntheticTokenDataModule


def _batches(dm, n):
    it = iter(dm.train_dataloader())
    return [next(it) for _ in range(n)]


def test_shapes_dtype_and_next_token_targets():
    dm = SyntheticTokenDataModule(vocab_size=100, seq_len=16, batch_size=3, seed=0, num_batches=5)
    x, y = _batches(dm, 1)[0]
    assert x.shape == y.shape == (3, 16)
    assert x.dtype == y.dtype == torch.long
    assert int(x.max()) < 100 and int(x.min()) >= 0
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one token
    assert len(dm.train_dataloader()) == 5


def test_seeded():
    a = _batches(SyntheticTokenDataModule(100, 16, 3, seed=7, num_batches=4), 4)
    b = _batches(SyntheticTokenDataModule(100, 16, 3, seed=7, num_batches=4), 4)
    c = _batches(SyntheticTokenDataModule(100, 16, 3, seed=8, num_batches=4), 4)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], a[1][0])  # batches differ from each other
