"""CollectiveWaits and TorchThreads without a second process: a one-rank gloo group and a scripted clock."""

from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.distributed as dist

from callbacks.collectives import CollectiveWaits, TorchThreads


@pytest.fixture
def one_rank_group():
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    yield
    dist.destroy_process_group()


class Bucket:
    def __init__(self, values):
        self.tensor = torch.tensor(values)

    def buffer(self):
        return self.tensor


def test_a_steps_wait_is_from_its_last_ready_bucket_to_the_last_completion(one_rank_group):
    cb = CollectiveWaits(warmup_steps=1, counted_steps=2)
    trainer = SimpleNamespace(strategy=SimpleNamespace(model=None))
    # step 1 (warm-up): one bucket ready at 1.000 s, done at 1.005 s
    # step 2: buckets ready at 2.000 and 2.010, done at 2.031 and 2.032: blocked 22 ms after its backward ended
    # step 3: one bucket ready at 3.000, done at 3.0005
    clock = [1.000, 1.005, 2.000, 2.031, 2.010, 2.032, 3.000, 3.0005]
    with mock.patch("time.perf_counter", side_effect=clock):
        for buckets in ([[2.0, 4.0]], [[1.0], [3.0]], [[6.0]]):
            for values in buckets:
                out = cb._hook(None, Bucket(values)).wait()
            cb.on_before_optimizer_step(trainer, None, None)
    assert out.tolist() == [6.0]  # the mean over the group's one rank: DDP's own averaging
    assert cb.step_waits_ms == pytest.approx([5.0, 22.0, 0.5])
    assert cb.counted_waits() == pytest.approx([22.0, 0.5]) and cb.waiting_ms("train") == pytest.approx(11.25)
    assert cb.waiting_ms("predict") is None  # no collective inside a forward pass
    # each counted step less its own wait: 50 - 22 and 40 - 0.5, then the median
    steps = [SimpleNamespace(phases={"step": 50.0}), SimpleNamespace(phases={"step": 40.0})]
    cb.timing = SimpleNamespace(counted=lambda stage: steps)
    assert cb.own_ms("train") == pytest.approx((28.0 + 39.5) / 2) and cb.own_ms("predict") is None


def test_no_ddp_model_no_wait_and_why():
    cb = CollectiveWaits()
    trainer = SimpleNamespace(strategy=SimpleNamespace(model=torch.nn.Linear(2, 2)), global_rank=0, world_size=1)
    cb.on_fit_start(trainer, None)
    assert cb.unavailable.startswith("no DistributedDataParallel model")
    cb.on_train_end(trainer, None)
    [mine] = cb.rank_figures["train"]
    assert mine["waiting_ms"] is None and mine["torch_threads"] == torch.get_num_threads()


def test_threads_are_set_again_when_the_trainer_sets_up():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # as Lightning's launcher does (CPUs / processes) after the caller's choice
        TorchThreads(1).setup(None, None, "fit")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_hook_refused_with_an_empty_message_is_said_in_one_line():
    """A refusal whose message is empty is still one line (it raised IndexError before: review item 6)."""
    import types
    from unittest import mock

    import torch

    from callbacks.collectives import CollectiveWaits

    model = mock.MagicMock(spec=torch.nn.parallel.DistributedDataParallel)
    model.register_comm_hook.side_effect = RuntimeError("")
    trainer = types.SimpleNamespace(strategy=types.SimpleNamespace(model=model, root_device=torch.device("cpu")))
    waits = CollectiveWaits()
    waits.on_fit_start(trainer, None)
    assert waits.unavailable == "DDP comm hook not registered (RuntimeError)"
