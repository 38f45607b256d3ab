"""The per-module breakdown under activation checkpointing and for any model's layer list: planted sleeps in one layer
of a Hugging Face Llama (non-reentrant and reentrant checkpointing) and of the built-in GPT-2, through real fits."""

from __future__ import annotations

import statistics
import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks.module_ranges import ModuleRangesCallback
from gpt2_lightning.analysis.module_parts import OPTIMIZER_ROW, OUTSIDE_ROW
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from gpt2_lightning.profile.profilers import ProfilerStepCallback, kernel_profiler

FORWARD_MS, BACKWARD_MS, OPTIMIZER_MS = 40.0, 60.0, 60.0  # far above what a loaded 2-core machine adds to a part
STEPS = 3  # recorded steps, after one traced warm-up step


class Slept:
    """Each planted sleep's real length (a loaded machine oversleeps), by where it ran."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {"forward": [], "recompute": [], "backward": [], "optimizer": []}

    def sleep(self, where: str, ms: float) -> None:
        t = time.perf_counter()
        time.sleep(ms / 1000)
        self.ms[where].append(1000 * (time.perf_counter() - t))

    def per_step(self, where: str) -> float:
        """The mean over the recorded steps (the last ones) of what that sleep took per step."""
        values = self.ms[where]
        per = len(values) // (STEPS + 2)  # calls per step: the warm-up step, the traced one and the recorded ones
        return sum(values[-per * STEPS:]) / STEPS if per else 0.0


class _Planted(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slept):
        ctx.slept = slept
        in_backward = torch._C._current_graph_task_id() != -1  # a forward run by backward: checkpointing's recompute
        slept.sleep("recompute" if in_backward else "forward", FORWARD_MS)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        ctx.slept.sleep("backward", BACKWARD_MS)
        return grad, None


class Planted(torch.nn.Module):
    """An identity whose forward (and recompute) sleeps FORWARD_MS and whose backward sleeps BACKWARD_MS."""

    def __init__(self, slept: Slept) -> None:
        super().__init__()
        self.slept = slept

    def forward(self, x):
        return _Planted.apply(x, self.slept)


class SlowAdamW(torch.optim.AdamW):
    """AdamW whose update sleeps OPTIMIZER_MS after the closure (forward and backward) has run."""

    def __init__(self, params, slept: Slept) -> None:
        super().__init__(params, lr=1e-3)
        self.slept = slept

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self.slept.sleep("optimizer", OPTIMIZER_MS)
        super().step()
        return loss


class Wrapped(L.LightningModule):
    """A language model in a LightningModule, its layer `slow` slowed by a Planted module, and a slow optimizer."""

    def __init__(self, model: torch.nn.Module, slept: Slept, hf: bool) -> None:
        super().__init__()
        self.model, self.slept, self.hf = model, slept, hf

    def training_step(self, batch, batch_idx):
        ids = batch[0]
        if self.hf:
            return self.model(input_ids=ids, labels=ids).loss
        return self.model(ids, ids)[1]

    def configure_optimizers(self):
        return SlowAdamW(self.parameters(), self.slept)


class OpenRanges(L.Callback):
    """How many module ranges are open at each batch's end (none should be)."""

    def __init__(self, ranges: ModuleRangesCallback) -> None:
        self.ranges, self.seen = ranges, []

    def on_train_batch_end(self, *args) -> None:
        self.seen.append(self.ranges._ranges.open_ranges())


def _profiled_fit(tmp_path, module: L.LightningModule, vocab: int):
    data = DataLoader(TensorDataset(torch.randint(0, vocab, (64, 16))), batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=STEPS + 2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    path = tmp_path / "t.pt.trace.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ranges = ModuleRangesCallback()
    opened = OpenRanges(ranges)
    try:
        with kernel_profiler(path, STEPS, cuda=False, warmup=1) as prof:
            trainer.callbacks[:0] = [ranges, ProfilerStepCallback(prof), opened]
            trainer.fit(module, data)
    finally:
        torch.set_num_threads(threads)
    return analyze_trace(path)["modules"], opened.seen


def _llama(slept: Slept, checkpointing: str, slow: int = 2) -> Wrapped:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32))
    mlp = model.model.layers[slow].mlp
    mlp.act_fn = torch.nn.Sequential(Planted(slept), mlp.act_fn)  # inside the layer's MLP: recomputed with it
    if checkpointing != "off":
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": checkpointing == "reentrant"})
    return Wrapped(model, slept, hf=True)


def _hf_gpt2(slept: Slept, checkpointing: str, slow: int = 2) -> Wrapped:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=4, n_head=4, n_positions=32))
    mlp = model.transformer.h[slow].mlp
    mlp.act = torch.nn.Sequential(Planted(slept), mlp.act)
    if checkpointing != "off":
        model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": checkpointing == "reentrant"})
    return Wrapped(model, slept, hf=True)


MODELS = {  # name -> (build, the layer list expected, the part the planted sleep is in)
    "llama": (_llama, {"path": "model.model.layers", "class": "LlamaDecoderLayer"},
              "model.model.layers.*.mlp.act_fn.* (Planted)"),
    "hf-gpt2": (_hf_gpt2, {"path": "model.transformer.h", "class": "GPT2Block"}, "MLP"),  # read as GPT-2's parts
}


def _check_common(m: dict, seen: list[int], slept: Slept) -> dict:
    rows = {r["part"]: r for r in m["parts"]}
    assert seen and not any(seen), f"module ranges left open at a batch's end: {seen}"
    assert rows[OUTSIDE_ROW]["pct"] < 50, rows[OUTSIDE_ROW]
    # the optimizer keeps its share: its planted sleep, as it really ran, plus AdamW over a tiny model
    assert rows[OPTIMIZER_ROW]["total_ms"] == pytest.approx(slept.per_step("optimizer"), rel=0.3)
    return rows


@pytest.mark.parametrize("model, checkpointing", [("llama", "non-reentrant"), ("llama", "reentrant"),
                                                   ("llama", "off"), ("hf-gpt2", "non-reentrant")])
def test_a_slow_hugging_face_layer_is_named_with_its_forward_backward_and_recompute(tmp_path, model, checkpointing):
    slept = Slept()
    build, layers, planted_part = MODELS[model]
    m, seen = _profiled_fit(tmp_path, build(slept, checkpointing), vocab=64)
    _check_common(m, seen, slept)
    assert m["block_list"] == layers
    blocks = {b["block"]: b for b in m["blocks"]}
    assert sorted(blocks) == [0, 1, 2, 3]
    assert 2 in m["outlier_blocks"] and max(blocks.values(), key=lambda b: b["excess_ms"])["block"] == 2
    forward, backward = slept.per_step("forward"), slept.per_step("backward")
    recompute = slept.per_step("recompute") if checkpointing != "off" else 0.0
    others = [b for i, b in blocks.items() if i != 2]
    base = {key: statistics.median(b[key] or 0.0 for b in others) for key in ("forward_ms", "recompute_ms")}
    assert blocks[2]["forward_ms"] - base["forward_ms"] == pytest.approx(forward, rel=0.3)
    assert blocks[2]["excess_ms"] == pytest.approx(forward + recompute + backward, rel=0.3)
    if checkpointing == "off":
        assert blocks[2]["recompute_ms"] is None and not slept.ms["recompute"]
    else:  # the recompute is the layer's own, not its caller's nor outside any module
        assert len(slept.ms["recompute"]) == STEPS + 2  # once a step
        assert blocks[2]["recompute_ms"] - base["recompute_ms"] == pytest.approx(recompute, rel=0.3)
    # the planted module's row holds it, the largest of the model's parts (part names fold the layer index)
    planted = max(m["parts"][:-2], key=lambda r: r["total_ms"])
    assert planted["part"] == planted_part
    assert planted["total_ms"] == pytest.approx(forward + recompute + backward, rel=0.3)


def test_built_in_gpt2_with_activation_checkpointing(tmp_path):
    """GPTConfig(activation_checkpointing=True): every block recomputed in backward, non-reentrant; a sleep planted
    in block 1's MLP shows in that block's forward and in its recompute; the optimizer keeps its share."""
    from gpt2_lightning import GPT, GPTConfig

    slept = Slept()
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", activation_checkpointing=True, vocab_size=64, n_embd=32))  # AdamW: ~0 ms
    model.transformer.h[1].mlp.gelu = torch.nn.Sequential(Planted(slept), model.transformer.h[1].mlp.gelu)
    m, seen = _profiled_fit(tmp_path, Wrapped(model, slept, hf=False), vocab=64)
    rows = _check_common(m, seen, slept)
    assert m["grouping"] == "gpt2" and 1 in m["outlier_blocks"]
    blocks = {b["block"]: b for b in m["blocks"]}
    assert max(blocks.values(), key=lambda b: b["excess_ms"])["block"] == 1
    assert len(slept.ms["recompute"]) == len(slept.ms["forward"]) == STEPS + 2  # block 1 ran twice a step
    forward, recompute = slept.per_step("forward"), slept.per_step("recompute")
    others = [b for i, b in blocks.items() if i != 1]
    for key, planted in (("forward_ms", forward), ("recompute_ms", recompute),
                         ("backward_ms", slept.per_step("backward"))):
        assert blocks[1][key] - statistics.median(b[key] for b in others) == pytest.approx(planted, rel=0.3), key
    assert rows["MLP"]["recompute_ms"] >= 0.7 * recompute
    assert all(b["recompute_ms"] > 0 for b in m["blocks"])  # every block is recomputed


def test_checkpointing_off_in_eval_and_the_logits_unchanged():
    from gpt2_lightning import GPT, GPTConfig

    torch.manual_seed(0)
    plain = GPT(GPTConfig.from_name("tiny"))
    ckpt = GPT(GPTConfig.from_name("tiny", activation_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 1024, (2, 8))
    plain.train(), ckpt.train()
    loss_a, loss_b = plain(idx, idx)[1], ckpt(idx, idx)[1]
    loss_a.backward(), loss_b.backward()
    assert torch.allclose(loss_a, loss_b)
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    with pytest.raises(ValueError, match="activation_checkpointing"):
        GPTConfig(activation_checkpointing="yes")
