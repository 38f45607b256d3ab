"""Which module took the time: planted delays through a real Lightning fit, hand-built GPU traces, GPT-2's parts."""

from __future__ import annotations

import json
import statistics
import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks.module_ranges import ModuleRangesCallback
from gpt2_lightning.analysis.module_parts import OPTIMIZER_ROW, OUTSIDE_ROW, add_flops, summarize
from gpt2_lightning.profile.profilers import ProfilerStepCallback, kernel_profiler
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from gpt2_lightning.analysis.trace_events import collect
from gpt2_lightning.analysis.trace_steps import profiled_steps
from tests.kineto import TraceBuilder
from tests.analysis.test_trace_analysis import FIXTURE

FORWARD_S, BACKWARD_S = 0.020, 0.030


SLEPT: dict[str, list[float]] = {"forward": [], "backward": []}  # what each sleep really took, in ms


def _sleep(phase: str, seconds: float) -> None:
    t = time.perf_counter()
    time.sleep(seconds)
    SLEPT[phase].append(1000 * (time.perf_counter() - t))


class _Planted(torch.autograd.Function):
    """Identity whose forward sleeps 20 ms and whose backward sleeps 30 ms."""

    @staticmethod
    def forward(ctx, x):
        _sleep("forward", FORWARD_S)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        _sleep("backward", BACKWARD_S)
        return grad


class Planted(torch.nn.Module):
    def forward(self, x):
        return _Planted.apply(x)


class Net(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(32, 64)
        self.planted = Planted()
        self.out = torch.nn.Linear(64, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.out(self.planted(self.inp(x))), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def _profiled_fit(tmp_path, steps: int = 3):
    """Three recorded steps of a real fit, as the GPU diagnosis records them (module ranges on, one range a step)."""
    data = DataLoader(TensorDataset(torch.randn(64, 32), torch.randn(64, 1)), batch_size=8)
    trainer = L.Trainer(accelerator="cpu", max_steps=steps + 1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    path = tmp_path / "t.pt.trace.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls split over threads can stall for ms on a loaded 2-core machine
    try:
        with kernel_profiler(path, steps, cuda=False, warmup=1) as prof:
            trainer.callbacks[:0] = [ModuleRangesCallback(), ProfilerStepCallback(prof)]
            trainer.fit(Net(), data)
    finally:
        torch.set_num_threads(threads)
    return path


def test_planted_module_comes_out_at_its_forward_and_backward_time(tmp_path):
    SLEPT["forward"].clear(), SLEPT["backward"].clear()
    path = _profiled_fit(tmp_path)
    m = analyze_trace(path)["modules"]
    assert m["grouping"] == "module name and class" and m["steps"] == 3
    rows = {r["part"]: r for r in m["parts"]}
    planted = rows["planted (Planted)"]
    # against the planted delays as they really ran (a loaded machine oversleeps) in the 3 recorded steps
    slept = {phase: statistics.fmean(SLEPT[phase][-3:]) for phase in SLEPT}
    assert 1000 * FORWARD_S <= slept["forward"] and 1000 * BACKWARD_S <= slept["backward"]
    assert planted["forward_ms"] == pytest.approx(slept["forward"], rel=0.10)
    assert planted["backward_ms"] == pytest.approx(slept["backward"], rel=0.10)
    # the others near their real cost: two small Linear layers and AdamW over 3 tensors take well under a millisecond
    for name in ("inp (Linear)", "out (Linear)"):
        assert rows[name]["forward_ms"] + rows[name]["backward_ms"] < 5.0, name
    assert 0 < rows[OPTIMIZER_ROW]["total_ms"] < 10.0
    # every moment of the steps is in exactly one row: the rows add up to the steps' length, read here from the JSON
    events = json.loads(path.read_text())["traceEvents"]
    step_us = [e["dur"] for e in events if e.get("ph") == "X" and e["name"].startswith("ProfilerStep#")]
    assert sum(r["total_ms"] for r in m["parts"]) == pytest.approx(m["total_ms_per_step"])
    assert m["total_ms_per_step"] == pytest.approx(sum(step_us) / len(step_us) / 1000, rel=1e-6)
    assert rows[OUTSIDE_ROW]["total_ms"] < 0.5 * m["total_ms_per_step"]


def _gpu_trace() -> TraceBuilder:
    """One step of 1000 us on the host (pid 1, forward thread 1; autograd's backward thread 2), all times in us.

    forward:  module a [10, 100): launches k1 (40 us) at 20; module b [100, 200): launches k2 (100 us) at 120, and
              an op under b carries sequence number 7
    backward: on thread 2, evaluate_function with sequence number 7 [300, 400): launches k3 (60 us) at 310;
              one with sequence number 99 (no forward in the trace) launches k4 (5 us) at 420
    optimizer: Optimizer.step [500, 700) launches k5 (30 us) at 510; outside everything, k6 (8 us) at 800."""
    b = TraceBuilder().host_step(1, 0, 1000)
    b.cpu_op("[pl][module]torch.nn.modules.linear.Linear: model.a", 10, 100, cat="user_annotation")
    b.cpu_op("aten::addmm", 15, 90)
    b.cpu_op("[pl][module]my.Block: model.b", 100, 200, cat="user_annotation")
    b.cpu_op("aten::mul", 110, 190)
    b.events[-1]["args"]["Sequence number"] = 7
    b.cpu_op("autograd::engine::evaluate_function: MulBackward0", 300, 400, tid=2)
    b.events[-1]["args"]["Sequence number"] = 7
    b.cpu_op("autograd::engine::evaluate_function: AddBackward0", 410, 430, tid=2)
    b.events[-1]["args"]["Sequence number"] = 99
    b.cpu_op("Optimizer.step#AdamW.step", 500, 700, cat="user_annotation")
    for name, start, dur, launch, tid in (("k1_gemm", 30, 40, 20, 1), ("k2_elementwise", 130, 100, 120, 1),
                                          ("k3", 320, 60, 310, 2), ("k4", 425, 5, 420, 2),
                                          ("k5_adam", 520, 30, 510, 1), ("k6", 810, 8, 800, 1)):
        b.gpu(name, start, dur, launch=launch)
        b.events[-2]["tid"] = tid  # the launch's host thread
    return b


def test_gpu_kernels_go_to_the_module_that_launched_them(tmp_path):
    m = analyze_trace(_gpu_trace().write(tmp_path / "g.json"))["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    assert m["basis"].startswith("kernel time")
    assert rows["model.a (Linear)"]["forward_ms"] == pytest.approx(0.040) and rows["model.a (Linear)"]["backward_ms"] == 0
    assert rows["model.b (Block)"]["forward_ms"] == pytest.approx(0.100)
    assert rows["model.b (Block)"]["backward_ms"] == pytest.approx(0.060)  # linked by sequence number 7, on thread 2
    assert rows[OPTIMIZER_ROW]["total_ms"] == pytest.approx(0.030)
    assert rows[OUTSIDE_ROW]["total_ms"] == pytest.approx(0.005 + 0.008)  # k4 (no forward in the trace) and k6
    assert m["backward_without_forward_ms"] == pytest.approx(0.005)
    assert m["total_ms_per_step"] == pytest.approx(0.243)  # every kernel once: 40 + 100 + 60 + 5 + 30 + 8


def test_a_trace_without_module_ranges_says_so():
    m = analyze_trace(FIXTURE)["modules"]
    assert set(m) == {"unavailable"} and "no module ranges" in m["unavailable"]


def test_gpt2_parts_from_the_diagnosis_steps(tmp_path):
    """The GPU diagnosis's extra steps, run on the CPU: GPT-2's parts, FLOPs that add up to the model's."""
    from gpt2_lightning.profile.diagnosis import profile_extra_steps
    from gpt2_lightning.profile.trainers import make_module
    from gpt2_lightning.flops import MATMUL_PARTS, part_train_flops_per_token, train_flops_per_token
    from gpt2_lightning.profile.settings import ProfileConfig

    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=2, seq_len=16, diagnose_steps=2)
    c = collect(profile_extra_steps(cfg, make_module(cfg), "train", tmp_path, "train"))
    m = summarize(c, profiled_steps(c)[0])
    assert m["grouping"] == "gpt2"
    rows = {r["part"]: r for r in m["parts"]}
    for part in ("embeddings", "attention projections", "attention kernel", "MLP", "layer norms", "output head",
                 "loss"):
        assert rows[part]["forward_ms"] > 0 and rows[part]["backward_ms"] > 0, part
    assert rows[OPTIMIZER_ROW]["total_ms"] > 0
    assert [b["block"] for b in m["blocks"]] == list(range(cfg.gpt_config().n_layer))
    assert m["backward_without_forward_ms"] == 0
    flops = part_train_flops_per_token(cfg.gpt_config(), 16)
    assert sum(flops.values()) == pytest.approx(train_flops_per_token(cfg.gpt_config(), 16), rel=1e-12)
    add_flops(m, flops, tokens_per_step=32, training=True, peak_tflops=100.0, matmul_parts=MATMUL_PARTS)
    mlp = rows["MLP"]
    assert mlp["flops_per_step"] == flops["MLP"] * 32
    assert mlp["tflops"] == pytest.approx(mlp["flops_per_step"] / (mlp["total_ms"] / 1000) / 1e12)
    assert mlp["pct_of_peak"] == pytest.approx(mlp["tflops"])  # of a 100 TFLOP/s peak
    assert rows["embeddings"]["tflops"] is None  # no FLOPs counted in MFU: no rate
    assert rows["layer norms"]["flops_per_step"] > 0 and rows["layer norms"]["tflops"] is None  # 6N's share only


def test_a_closure_inside_optimizer_step_on_a_gpu(tmp_path):
    """Lightning's automatic optimisation on a GPU: optimizer.step(closure) holds the forward (main thread) and waits
    while autograd's own thread runs the backward; only what follows the backward is the optimizer's update (us)."""
    b = TraceBuilder().host_step(1, 0, 1000)
    b.cpu_op("Optimizer.step#AdamW.step", 5, 900, cat="user_annotation")
    b.cpu_op("[pl][module]torch.nn.modules.linear.Linear: model.a", 10, 100, cat="user_annotation")
    b.cpu_op("aten::addmm", 15, 90)
    b.events[-1]["args"]["Sequence number"] = 3
    b.cpu_op("autograd::engine::evaluate_function: AddmmBackward0", 300, 400, tid=2)  # while main thread waits
    b.events[-1]["args"]["Sequence number"] = 3
    for name, start, dur, launch, tid in (("k_fwd_gemm", 30, 40, 20, 1), ("k_bwd_gemm", 320, 80, 310, 2),
                                          ("k_adam", 600, 50, 500, 1)):
        b.gpu(name, start, dur, launch=launch)
        b.events[-2]["tid"] = tid
    m = analyze_trace(b.write(tmp_path / "c.json"))["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    assert rows["model.a (Linear)"]["forward_ms"] == pytest.approx(0.040)
    assert rows["model.a (Linear)"]["backward_ms"] == pytest.approx(0.080)
    assert rows[OPTIMIZER_ROW]["total_ms"] == pytest.approx(0.050)  # not the forward before it


def test_recompute_inside_backward_goes_to_the_recomputed_module_on_a_gpu(tmp_path):
    """Activation checkpointing on a GPU (us): block h.0's forward [10, 100) launches k_fwd (40) at 20, its op carries
    sequence number 5; the caller's CheckpointFunction op (sequence number 6) sits in model.gpt [0, 200). In backward,
    on autograd's thread 2, the checkpoint's node [300, 600) reruns h.0's forward [310, 400) (launching k_rec, 30 us,
    at 320; its op gets sequence number 9), then runs a backward inside itself (reentrant) for sequence number 9
    [420, 500), launching k_bwd (50 us) at 430; at 550 the node itself launches k_tail (5 us)."""
    b = TraceBuilder().host_step(1, 0, 1000)
    b.cpu_op("[pl][module]my.GPT: model.gpt", 0, 200, cat="user_annotation")
    b.cpu_op("CheckpointFunction", 5, 150)
    b.events[-1]["args"]["Sequence number"] = 6
    b.cpu_op("[pl][module]my.Block: model.gpt.h.0", 10, 100, cat="user_annotation")
    b.cpu_op("aten::mul", 15, 90)
    b.events[-1]["args"]["Sequence number"] = 5
    b.cpu_op("autograd::engine::evaluate_function: CheckpointFunctionBackward", 300, 600, tid=2)
    b.events[-1]["args"]["Sequence number"] = 6
    b.cpu_op("[pl][module]my.Block: model.gpt.h.0", 310, 400, tid=2, cat="user_annotation")
    b.cpu_op("aten::mul", 315, 390, tid=2)
    b.events[-1]["args"]["Sequence number"] = 9
    b.cpu_op("autograd::engine::evaluate_function: MulBackward0", 420, 500, tid=2)
    b.events[-1]["args"]["Sequence number"] = 9
    for name, start, dur, launch, tid in (("k_fwd", 30, 40, 20, 1), ("k_rec", 330, 30, 320, 2),
                                          ("k_bwd", 440, 50, 430, 2), ("k_tail", 560, 5, 550, 2)):
        b.gpu(name, start, dur, launch=launch)
        b.events[-2]["tid"] = tid
    m = analyze_trace(b.write(tmp_path / "r.json"))["modules"]
    rows = {r["part"]: r for r in m["parts"]}
    block = rows["model.gpt.h.* (Block)"]
    assert block["forward_ms"] == pytest.approx(0.040)
    assert block["recompute_ms"] == pytest.approx(0.030)  # the block's own, not its caller's
    assert block["backward_ms"] == pytest.approx(0.050)  # the inner backward, linked to the recompute's op
    assert rows["model.gpt (GPT)"]["backward_ms"] == pytest.approx(0.005)  # the checkpoint node's own launch
    assert rows[OUTSIDE_ROW]["total_ms"] == 0
    assert m["total_ms_per_step"] == pytest.approx(0.125)  # every kernel once: 40 + 30 + 50 + 5
    from gpt2_lightning.report.modules import markdown_lines, text_lines

    text = text_lines(m)
    assert "recomp ms" in text[1]
    assert next(line for line in text if line.startswith("model.gpt.h.* (Block)")).split()[2:6] == [
        "0.040", "0.050", "0.030", "0.120"]  # forward, backward, recompute, total
    assert "| model.gpt.h.* (Block) | 0.040 | 0.050 | 0.030 | 0.120 |" in "\n".join(markdown_lines(m))


def test_the_layer_list_of_any_model():
    from gpt2_lightning.analysis.module_parts import layer_list

    llama = [("model.model", "LlamaModel"), *[(f"model.model.layers.{i}", "LlamaDecoderLayer") for i in range(4)],
             *[(f"model.model.layers.{i}.mlp", "LlamaMLP") for i in range(4)]]
    assert layer_list(llama) == ("model.model.layers", "LlamaDecoderLayer")
    moe = [*[(f"blocks.{i}", "Block") for i in range(2)], *[(f"blocks.{i}.experts.{j}", "Expert")
                                                          for i in range(2) for j in range(8)]]
    assert layer_list(moe) == ("blocks", "Block")  # the layers, not the more numerous experts inside them
    assert layer_list([("seq.0", "Linear"), ("seq.1", "ReLU")]) is None  # a Sequential of different layers
    assert layer_list([("h.0", "Block")]) is None  # one is no list


def test_part_names_shorten_from_the_left_and_never_read_alike():
    from gpt2_lightning.analysis.module_parts import short_names

    names = ["model.model.layers.*.self_attn.q_proj (Linear)", "model.model.layers.*.self_attn.k_proj (Linear)",
             "model.model.layers.*.mlp.down_proj (Linear)", "model.encoder.layers.*.attention.output (Linear)",
             "model.decoder.layers.*.attention.output (Linear)", "optimizer"]
    short = short_names(names, 32)
    assert short[names[0]] == "...*.self_attn.q_proj (Linear)" and short[names[1]] == "...*.self_attn.k_proj (Linear)"
    assert short[names[2]] == "...*.mlp.down_proj (Linear)"
    assert short[names[3]] == "...encoder.layers.*.attention.output (Linear)"  # back to where they differ
    assert short[names[4]] == "...decoder.layers.*.attention.output (Linear)"
    assert short["optimizer"] == "optimizer"
    assert len(set(short.values())) == len(names)
