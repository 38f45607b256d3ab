"""The per-module tables' rows by hand-built traces with known durations: what the "N other modules" row folds."""

from __future__ import annotations

import pytest

from gpt2_lightning.analysis.trace_analysis import analyze_trace
from gpt2_lightning.report.modules import markdown_lines, text_lines
from tests.kineto import TraceBuilder


def _fourteen_modules(tmp_path):
    """One CPU step of 10 ms; module net.m<i> (Linear) runs (i + 1) x 20 us, i = 0..13, one after another."""
    b = TraceBuilder().host_step(1, 0, 10_000)
    for i in range(14):
        b.cpu_op(f"[pl][module]torch.nn.modules.linear.Linear: net.m{i}", 100 + 500 * i, 100 + 500 * i + 20 * (i + 1),
                 cat="user_annotation")
    return analyze_trace(b.write(tmp_path / "t.json"))["modules"]


def test_the_other_modules_row_names_what_it_folds_largest_first(tmp_path):
    m = _fourteen_modules(tmp_path)
    folded = next(r for r in m["parts"] if r["part"] == "3 other modules")  # 11 rows shown, the 3 smallest folded
    assert folded["total_ms"] == pytest.approx((60 + 40 + 20) / 1000)
    assert folded["folds"] == ["net.m2 (Linear)", "net.m1 (Linear)", "net.m0 (Linear)"]
    report = "\n".join(markdown_lines(m))
    assert "3 other modules: net.m2 (Linear), net.m1 (Linear), net.m0 (Linear) (largest first)." in report
    assert "3 other modules: net.m2 (Linear), net.m1 (Linear), net.m0 (Linear) (largest first)" in text_lines(m)


def test_a_folded_row_gets_its_parts_counted_flops(tmp_path):
    from gpt2_lightning.analysis.part_flops import add_counted_flops

    m = _fourteen_modules(tmp_path)
    add_counted_flops(m, {"net.m13 (Linear)": 2.8e6, "net.m0 (Linear)": 1e5, "net.m2 (Linear)": 2e5}, peak_tflops=None)
    rows = {r["part"]: r for r in m["parts"]}
    # 280 us for 2.8 MFLOP: 10 GFLOP/s; the folded row: 300 kFLOP in 120 us, 2.5 GFLOP/s
    assert rows["net.m13 (Linear)"]["tflops"] == pytest.approx(0.010)
    assert rows["3 other modules"]["flops_per_step"] == 3e5 and rows["3 other modules"]["tflops"] == pytest.approx(
        0.0025)
    assert rows["net.m12 (Linear)"].get("tflops") is None and rows["net.m12 (Linear)"].get("flops_per_step") is None
    table = "\n".join(markdown_lines(m))
    assert "| net.m13 (Linear) | 0.280 | - | 0.280 |" in table and "| 10.0 | - |" in table
    assert "| 3 other modules | 0.120 | - | 0.120 |" in table and "| 2.5 | - |" in table
    assert "GFLOP/s: each part's FLOPs (FlopCounterMode per module: matrix" in table
    add_counted_flops(m, {"net.m13 (Linear)": 2.8e6}, peak_tflops=0.1)  # a 100 GFLOP/s device: 10 GFLOP/s is 10%
    assert rows["net.m13 (Linear)"]["pct_of_peak"] == pytest.approx(10.0)


def _bars(monkeypatch, tmp_path, parts):
    """The right ends of modules.png's bars, by row label, from the figure as drawn."""
    from gpt2_lightning.report import module_plot

    drawn = {}
    monkeypatch.setattr(module_plot, "save_figure", lambda fig, path: drawn.setdefault("fig", fig))
    data = {"experiments": {"train": {"diagnosis": {"modules": {
        "parts": parts, "total_ms_per_step": sum(r["total_ms"] for r in parts), "steps": 3}}}}}
    module_plot.plot_modules(data, tmp_path / "modules.png")
    ax = drawn["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ends: dict[str, float] = {}
    for patch in ax.patches:
        row = labels[round(patch.get_y() + patch.get_height() / 2)]
        ends[row] = max(ends.get(row, 0.0), patch.get_x() + patch.get_width())
    return ends


def test_modules_png_bars_end_at_each_rows_total(monkeypatch, tmp_path):
    """Recompute in the total (forward 1 + backward 2 + recompute 1.5 = 4.5 ms), and a results.json from before
    that, whose total (3.211) left the recompute (1.258) out: every bar still ends at its row's total."""
    parts = [{"part": "MLP", "forward_ms": 1.0, "backward_ms": 2.0, "recompute_ms": 1.5, "total_ms": 4.5, "pct": 50},
             {"part": "old MLP", "forward_ms": 0.816, "backward_ms": 2.395, "recompute_ms": 1.258, "total_ms": 3.211,
              "pct": 35.7},
             {"part": "optimizer", "forward_ms": None, "backward_ms": None, "recompute_ms": None, "total_ms": 1.289,
              "pct": 14.3}]
    ends = _bars(monkeypatch, tmp_path, parts)
    assert ends == {"MLP": pytest.approx(4.5), "old MLP": pytest.approx(3.211), "optimizer": pytest.approx(1.289)}


def test_many_layers_name_the_one_that_stands_out_and_leave_the_rows_to_report_md():
    from gpt2_lightning.report.modules import console_layers

    k = {i: 10.0 if i == 5 else 1.0 for i in range(13)}  # layer 5 ten times the others
    blocks = [{"block": i, "forward_ms": 0.4 * k[i], "backward_ms": 0.6 * k[i], "recompute_ms": None,
               "total_ms": k[i]} for i in range(13)]
    m = {"grouping": "gpt2", "basis": "kernel time", "total_ms_per_step": 22.0, "steps": 2, "blocks": blocks,
         "outlier_blocks": [5], "block_list": {"path": "transformer.h", "class": "Block"},
         "parts": [{"part": "MLP", "forward_ms": 8.8, "backward_ms": 13.2, "total_ms": 22.0, "pct": 100.0}]}
    said = "layer 5 stands out: 10.000 ms (10.0x the median, +9.000 ms over it)"
    text = text_lines(m)
    assert text[-1] == (f"layers (transformer.h.N, Block): 13, 1.000 to 10.000 ms per step (median 1.000); {said} "
                        f"(every row: --json, or report.md)")
    assert console_layers(m).endswith(f"{said} (every layer: report.md)")
    report = "\n".join(markdown_lines(m))
    assert report.count("| 0.400 | 0.600 | 1.000 | +0.000 |") == 12
    assert "| **5 (stands out)** | 4.000 | 6.000 | 10.000 | +9.000 |" in report
