"""Each part's GFLOP/s for a model the tool does not know: FlopCounterMode's per-module counts, against hand counts."""

from __future__ import annotations

import json

import pytest
import torch

from gpt2_lightning.analysis.part_flops import counted_part_flops, own_flops
from gpt2_lightning.profile.flop_count import count_flops_by_module, module_classes
from tests.analysis.test_module_breakdown import Net
from tests.profile.own_models import TinyLM
from tests.profile.test_own_model import OWN, _run

V, D, LAYERS, B, T = 64, 16, 2, 4, 8
FC, HEAD = 2 * B * T * D * D, 2 * B * T * D * V  # one forward of one block's Linear, of the head, by hand


def test_each_module_named_by_its_path_and_counted_by_hand():
    ids = {"input_ids": torch.randint(0, V, (B, T))}
    total, _, by_module = count_flops_by_module(TinyLM(V, D, LAYERS), ids, training=True)
    # backward: input and weight gradients, twice the forward; each block holds its Linear's count
    assert by_module == {"blocks.0": 3 * FC, "blocks.0.fc": 3 * FC, "blocks.1": 3 * FC, "blocks.1.fc": 3 * FC,
                         "head": 3 * HEAD}
    assert total == LAYERS * 3 * FC + 3 * HEAD
    parts = counted_part_flops(by_module, module_classes(TinyLM(V, D, LAYERS)), "module name and class")
    assert parts == {"blocks.*.fc (Linear)": LAYERS * 3 * FC, "head (Linear)": 3 * HEAD}  # a Block's own work: none
    # a step that calls its submodules directly (no self(...)): two Linear layers still told apart
    x, y = torch.randn(8, 32), torch.randn(8, 1)
    _, _, net = count_flops_by_module(Net(), (x, y), training=True)
    assert net == {"inp": 2 * (2 * 8 * 32 * 64), "out": 3 * (2 * 8 * 64)}  # inp: no gradient for its input


def test_a_module_whose_own_call_needs_arguments_still_gets_its_steps_count():
    """A forward pre-hook of its own that reads the call's first argument: the per-module names cannot be had (the
    count runs the step by itself then), the step's FLOPs still are, by hand."""
    model = TinyLM(V, D, LAYERS)
    model.register_forward_pre_hook(lambda module, args: args[0].shape and None)
    ids = {"input_ids": torch.randint(0, V, (B, T))}
    assert count_flops_by_module(model, ids, training=True) == (LAYERS * 3 * FC + 3 * HEAD, "meta", {})


def test_own_flops_subtracts_the_nearest_counted_submodules():
    assert own_flops({"a": 10.0, "a.b": 4.0, "a.b.c": 3.0, "a.d.e": 5.0, "f": 1.0}) == {
        "a": 1.0, "a.b": 1.0, "a.b.c": 3.0, "a.d.e": 5.0, "f": 1.0}


def test_the_breakdown_of_your_module_has_gflops_per_part(tmp_path):
    proc = _run("profile.py", "--accelerator", "cpu", "--module", f"{OWN}:TinyLM", "--module-args",
                json.dumps({"width": D, "layers": LAYERS}), "--datamodule", f"{OWN}:TokenData", "--datamodule-args",
                json.dumps({"vocab": V}), "--batch-size", str(B), "--seq-len", str(T), "--steps", "2",
                "--warmup-steps", "1", "--no-energy", "--threads", "1", "--profiler", "pytorch",
                "--experiments", "train,inference", "--out", str(tmp_path), "--run-name", "r")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    for exp, factor in (("train", 3), ("inference", 1)):
        m = data["experiments"][exp]["diagnosis"]["modules"]
        rows = {r["part"]: r for r in m["parts"]}
        for part, flops in (("blocks.*.fc (Linear)", LAYERS * factor * FC), ("head (Linear)", factor * HEAD)):
            row = rows[part]
            assert row["flops_per_step"] == flops, (exp, part)
            assert row["tflops"] * 1e12 * row["total_ms"] / 1000 == pytest.approx(flops, rel=1e-9)
        assert rows["blocks.* (Block)"].get("tflops") is None  # residual add and relu: no counted FLOPs
    report = (tmp_path / "r" / "report.md").read_text()
    head = next(line for line in report.splitlines() if line.startswith("| head (Linear) |"))
    assert head.split("|")[-3].strip() not in ("-", "")  # GFLOP/s filled
    assert "each part's FLOPs (FlopCounterMode per module: matrix" in report


def test_a_count_that_must_run_on_a_cpu_copy_says_so_first(capsys):
    """A step the meta device cannot run (a .item() reads a value) is counted on a CPU copy, a real step of the model:
    one line says so before it starts, since on a large model it takes as long as a step."""
    import lightning as L
    import torch

    from gpt2_lightning.profile.flop_count import count_flops_by_module

    class ReadsAValue(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 4)

        def training_step(self, batch, _):
            loss = self.lin(batch).sum()
            loss.item()  # no meta kernel: a meta tensor has no value
            return loss

    total, where, _ = count_flops_by_module(ReadsAValue(), torch.ones(2, 8), training=True)
    # forward 2·B·I·O; backward the weight's gradient alone (the input needs none): as much again
    assert where == "cpu" and total == 2 * (2 * 2 * 8 * 4)
    assert "counting the FLOPs of one training step on a CPU copy" in capsys.readouterr().err
