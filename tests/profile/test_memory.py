"""Memory: the peak split by tensor sizes (exact bytes), and the allocation-history snapshot's life cycle (stand-ins
for the CUDA calls, which need a GPU)."""

from types import SimpleNamespace

import pytest
import torch

from gpt2_lightning.profile.memory import GIB, MemorySnapshotCallback, memory_breakdown
from gpt2_lightning.report.render import memory_split_line


def _stepped(module: torch.nn.Module) -> torch.optim.Optimizer:
    opt = torch.optim.AdamW(module.parameters(), foreach=False)
    module(torch.ones(1, 4)).sum().backward()
    opt.step()
    return opt


def test_split_counts_parameters_gradients_and_adam_state_exactly():
    module = torch.nn.Linear(4, 4)  # 16 + 4 fp32 parameters: 80 bytes
    opt = _stepped(module)
    split = memory_breakdown(module, [opt], {"max_allocated_gib": 1000 / GIB})
    assert split["parameters_gib"] * GIB == 80 and split["gradients_gib"] * GIB == 80
    assert split["optimizer_state_gib"] * GIB == 80 + 80 + 2 * 4  # exp_avg, exp_avg_sq, a 0-d step per parameter
    assert split["other_gib"] * GIB == pytest.approx(1000 - 80 - 80 - 168) and split["peak_gib"] * GIB == 1000


def test_tied_weights_count_once_and_a_cpu_has_no_rest():
    a, b = torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4, bias=False)
    b.weight = a.weight  # as GPT-2's lm_head and wte
    module = torch.nn.Sequential(a, b)
    split = memory_breakdown(module, [], {"max_rss_gib": 1.0})
    assert split["parameters_gib"] * GIB == 64 and split["gradients_gib"] == 0 and split["optimizer_state_gib"] == 0
    assert split["other_gib"] is None and split["peak_gib"] is None
    line = memory_split_line(split)
    assert "parameters 0.000 GiB" in line and "other" not in line


def test_split_line_names_the_rest_and_the_snapshot():
    split = {"parameters_gib": 0.5, "gradients_gib": 0.5, "optimizer_state_gib": 1.0, "other_gib": 8.0,
             "peak_gib": 10.0}
    line = memory_split_line(split, "memory-train.pickle")
    assert "other (activations, workspace) 8.000 GiB of the 10.000 GiB peak" in line
    assert "[`memory-train.pickle`](memory-train.pickle)" in line and "memory_viz" in line


@pytest.fixture
def cuda_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda.memory, "_record_memory_history",
                        lambda enabled="all", **kw: calls.append(("record", enabled)))
    monkeypatch.setattr(torch.cuda.memory, "_dump_snapshot", lambda path: calls.append(("dump", path)))
    return calls


def _trainer(device="cuda", rank=0):
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)), global_rank=rank)


def test_snapshot_records_from_setup_through_the_warmup_steps(cuda_calls, tmp_path):
    cb = MemorySnapshotCallback(tmp_path / "memory-train.pickle", warmup_steps=2)
    cb.setup(_trainer(), None, "fit")
    cb.on_train_start(None, None)
    assert cuda_calls == [("record", "all")] and cb.recording
    cb.on_train_batch_end(None, None, None, None, 0)  # the first warm-up step
    assert len(cuda_calls) == 1
    cb.on_train_batch_end(None, None, None, None, 1)  # the last warm-up step: written, recording stopped
    assert cuda_calls[1:] == [("dump", str(tmp_path / "memory-train.pickle")), ("record", None)]
    assert cb.written == tmp_path / "memory-train.pickle" and not cb.recording
    cb.on_train_batch_end(None, None, None, None, 2)  # counted steps: nothing recorded, nothing written
    cb.teardown(None, None, "fit")
    assert len(cuda_calls) == 3


def test_without_warmup_steps_the_snapshot_holds_the_build_and_is_written_before_the_first_step(cuda_calls, tmp_path):
    cb = MemorySnapshotCallback(tmp_path / "m.pickle", warmup_steps=0)
    cb.setup(_trainer(), None, "predict")
    cb.on_predict_start(None, None)
    assert [c[0] for c in cuda_calls] == ["record", "dump", "record"] and cb.written is not None


def test_snapshot_on_out_of_memory_and_not_on_other_errors(cuda_calls, tmp_path):
    cb = MemorySnapshotCallback(tmp_path / "m.pickle", warmup_steps=2)
    cb.setup(_trainer(), None, "fit")
    cb.on_exception(None, None, torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert [c[0] for c in cuda_calls] == ["record", "dump", "record"] and cb.written is not None
    cuda_calls.clear()
    other = MemorySnapshotCallback(tmp_path / "n.pickle", warmup_steps=2)
    other.setup(_trainer(), None, "fit")
    other.on_exception(None, None, ValueError("boom"))
    assert cuda_calls == [("record", "all"), ("record", None)] and other.written is None


def test_snapshot_writes_what_it_has_when_the_stage_ends_early(cuda_calls, tmp_path):
    cb = MemorySnapshotCallback(tmp_path / "m.pickle", warmup_steps=2)
    cb.setup(_trainer(), None, "predict")
    cb.on_predict_batch_end(None, None, None, None, 0)
    cb.teardown(None, None, "predict")
    assert [c[0] for c in cuda_calls] == ["record", "dump", "record"]


@pytest.mark.parametrize("device, rank", [("cpu", 0), ("cuda", 1)])
def test_snapshot_records_nothing_on_a_cpu_or_another_rank(cuda_calls, tmp_path, device, rank):
    cb = MemorySnapshotCallback(tmp_path / "m.pickle", warmup_steps=0)
    cb.setup(_trainer(device, rank), None, "fit")
    cb.on_train_batch_end(None, None, None, None, 5)
    cb.teardown(None, None, "fit")
    assert cuda_calls == [] and cb.written is None
