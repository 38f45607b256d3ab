"""The per-layer rows where people read them (report.md, the console, analyze_trace.py): a sleep planted in one layer
of a real fit shows in that layer's row, against the sleeps as they really ran."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks.module_ranges import ModuleRangesCallback
from gpt2_lightning.analysis.trace_analysis import analyze_trace
from gpt2_lightning.analysis.verdict import diagnose
from gpt2_lightning.profile.profilers import ProfilerStepCallback, kernel_profiler
from gpt2_lightning.report.diagnosis import markdown, summary_lines
from gpt2_lightning.report.trace_cli import main as analyze_trace_main
from tests.analysis.test_checkpointing_breakdown import STEPS, Planted, Slept

SLOW = 2  # the layer with the planted sleep


class Layer(torch.nn.Module):
    def __init__(self, slept: Slept | None) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(16, 16)
        self.planted = Planted(slept) if slept is not None else torch.nn.Identity()

    def forward(self, x):
        return self.planted(torch.relu(self.fc(x)))


class LayerNet(L.LightningModule):
    """An embedding, four layers in a ModuleList (layer SLOW sleeps), a head: a layer list the breakdown finds."""

    def __init__(self, slept: Slept) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(32, 16)
        self.layers = torch.nn.ModuleList(Layer(slept if i == SLOW else None) for i in range(4))
        self.head = torch.nn.Linear(16, 32)

    def training_step(self, batch, batch_idx):
        ids = batch[0]
        x = self.emb(ids)
        for layer in self.layers:
            x = layer(x)
        return torch.nn.functional.cross_entropy(self.head(x).flatten(0, 1), ids.flatten())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    slept = Slept()
    path = tmp_path_factory.mktemp("layers") / "t.pt.trace.json"
    data = DataLoader(TensorDataset(torch.randint(0, 32, (64, 8))), batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=STEPS + 2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with kernel_profiler(path, STEPS, cuda=False, warmup=1) as prof:
            trainer.callbacks[:0] = [ModuleRangesCallback(), ProfilerStepCallback(prof)]
            trainer.fit(LayerNet(slept), data)
    finally:
        torch.set_num_threads(threads)
    planted = slept.per_step("forward") + slept.per_step("backward")  # what the sleeps really took per step
    return path, diagnose(analyze_trace(path)), planted


def test_report_md_has_one_row_per_layer_with_the_planted_layer_marked(planted_run):
    _, d, planted = planted_run
    text = "\n".join(markdown(d))
    assert "| layer | forward ms | backward ms | total ms | over the median layer, ms |" in text
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| (\*\*)?(\d+)( \(stands out\)\*\*)? \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+) \|$",
                     line)
        if m:
            rows[int(m.group(2))] = (bool(m.group(3)), *map(float, m.groups()[3:]))
    assert sorted(rows) == [0, 1, 2, 3]
    assert [i for i, r in rows.items() if r[0]] == [SLOW]  # only the slow layer is marked
    assert rows[SLOW][4] == pytest.approx(planted, rel=0.3)  # its excess over the median: the sleeps as they ran
    assert rows[SLOW][1] + rows[SLOW][2] == pytest.approx(rows[SLOW][3], abs=0.002)
    assert all(abs(r[4]) < 0.2 * planted for i, r in rows.items() if i != SLOW)
    assert f"layer {SLOW} stands out" in text


def test_console_names_the_layer_with_its_excess_and_lists_the_few_layers(planted_run):
    _, d, planted = planted_run
    line = next(x for x in summary_lines("train", d) if x.lstrip().startswith("layers ("))
    assert line.startswith("  layers (layers.N, Layer), ms per step: 0 ")
    totals = dict(re.findall(r"(\d+) ([\d.]+)(?:,|$| \()", line.split(": ", 1)[1]))
    assert sorted(map(int, totals)) == [0, 1, 2, 3]
    excess = float(re.search(rf"{SLOW} [\d.]+ \(stands out, \+([\d.]+) over the median\)", line).group(1))
    assert excess == pytest.approx(planted, rel=0.3)


def test_analyze_trace_prints_the_layer_rows(planted_run, capsys):
    path, _, planted = planted_run
    assert analyze_trace_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert f"layer {SLOW} stands out" in out
    rows = {int(m.group(1)): (m.group(2), float(m.group(3))) for m in
            re.finditer(r"^\s+(\d+)( <)?\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([+-][\d.]+)$", out, re.M)}
    assert sorted(rows) == [0, 1, 2, 3]
    assert rows[SLOW] == (" <", pytest.approx(planted, rel=0.3))
    assert rows[0][0] is None
