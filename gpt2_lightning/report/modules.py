"""The per-module breakdown (``modules`` of a diagnosis) as people read it: a text table, a markdown table, a console
line. Plain Python, no torch."""

from __future__ import annotations

import statistics
from typing import Any

from gpt2_lightning.analysis.module_parts import OUTLIER_BLOCK_RATIO, short_names

CONSOLE_PARTS = 4  # the largest parts named on the console
MAX_LAYER_ROWS = 12  # the console and analyze_trace list every layer up to this many


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _unit(m: dict[str, Any]) -> tuple[str, float]:
    """TFLOP/s, or GFLOP/s when no part reaches 1 TFLOP/s (a CPU)."""
    rates = [r["tflops"] for r in m.get("parts", []) if r.get("tflops") is not None]
    return ("TFLOP/s", 1.0) if rates and max(rates) >= 1.0 else ("GFLOP/s", 1000.0)


def _rate(row: dict[str, Any], scale: float) -> tuple[str, str]:
    tflops, pct = row.get("tflops"), row.get("pct_of_peak")
    return ("-" if tflops is None else f"{tflops * scale:.1f}", "-" if pct is None else f"{pct:.1f}")


def _shown(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in m["parts"] if r["total_ms"] > 0]  # e.g. no loss or optimizer in inference


def _of(m: dict[str, Any]) -> str:
    if m.get("scaled"):
        return "the un-profiled step"
    return "kernel time" if str(m.get("basis", "")).startswith("kernel") else "host time"


def _layers(m: dict[str, Any]) -> tuple[list[dict[str, Any]], float, str]:
    """The layer rows, the median layer's total and what the layers are ("model.transformer.h.N, GPT2Block")."""
    blocks = m.get("blocks") or []
    median = statistics.median(b["total_ms"] for b in blocks) if blocks else 0.0
    layers = m.get("block_list")
    return blocks, median, f"{layers['path']}.N, {layers['class']}" if layers else "blocks"


def _excess(b: dict[str, Any], median: float) -> float:
    """Over the median layer: ``excess_ms`` as module_parts.rank_layers stored it (again after a CPU breakdown's rows
    were scaled); a results.json from before that field, from the rows as shown."""
    return b["excess_ms"] if "excess_ms" in b else b["total_ms"] - median


def _standing_out(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in m.get("blocks") or [] if b["block"] in (m.get("outlier_blocks") or [])]


def _outlier_text(b: dict[str, Any], median: float) -> str:
    ratio = f"{b['total_ms'] / median:.1f}x the median, " if median > 0 else ""
    return f"layer {b['block']} stands out: {b['total_ms']:.3f} ms ({ratio}+{_excess(b, median):.3f} ms over it)"


def _blocks_line(m: dict[str, Any]) -> str | None:
    """One line: how many layers, their range and median, and the layer that stands out with its excess."""
    blocks, median, what = _layers(m)
    if not blocks:
        return None
    line = (f"layers ({what}): {len(blocks)}, {min(b['total_ms'] for b in blocks):.3f} to "
            f"{max(b['total_ms'] for b in blocks):.3f} ms per step (median {median:.3f})")
    outliers = _standing_out(m)
    if outliers:
        return line + "; " + "; ".join(_outlier_text(b, median) for b in outliers)
    return line + ("; none stands out" if len(blocks) >= 3 else "")  # two layers: no median to stand out from


def _layer_cells(m: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The per-layer table's header and rows: layer, forward, backward, recompute (when any), total, over the median;
    a layer that stands out marked with "<"."""
    blocks, median, _ = _layers(m)
    rec = any(b.get("recompute_ms") is not None for b in blocks)
    head = ["layer", "fwd ms", "bwd ms"] + (["recomp ms"] if rec else []) + ["total ms", "vs median"]
    out = set(m.get("outlier_blocks") or [])
    rows = [[f"{b['block']}" + (" <" if b["block"] in out else ""), _ms(b.get("forward_ms")),
             _ms(b.get("backward_ms"))] + ([_ms(b.get("recompute_ms"))] if rec else [])
            + [f"{b['total_ms']:.3f}", f"{_excess(b, median):+.3f}"] for b in blocks]
    return head, rows


def _layer_text(m: dict[str, Any]) -> list[str]:
    """analyze_trace's per-layer view: the summary line, and the rows when there are at most MAX_LAYER_ROWS."""
    line = _blocks_line(m)
    if line is None:
        return []
    if len(m["blocks"]) > MAX_LAYER_ROWS:
        return [line + " (every row: --json, or report.md)"]
    head, rows = _layer_cells(m)
    return [line, "  ".join(f"{h:>9}" for h in head)] + ["  ".join(f"{c:>9}" for c in r) for r in rows] + (
        [f"(< stands out: over {OUTLIER_BLOCK_RATIO:g}x the median layer)"] if m.get("outlier_blocks") else [])


def layer_markdown(m: dict[str, Any]) -> list[str]:
    """report.md's per-layer table, after its summary line (every layer: a file has room)."""
    line = _blocks_line(m)
    if line is None:
        return []
    head, rows = _layer_cells(m)
    names = {"fwd ms": "forward ms", "bwd ms": "backward ms", "recomp ms": "recompute ms",
             "vs median": "over the median layer, ms"}
    out = [line[0].upper() + line[1:] + ".", "", "| " + " | ".join(names.get(h, h) for h in head) + " |",
           "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        first = f"**{r[0][:-2]} (stands out)**" if r[0].endswith(" <") else r[0]
        out.append("| " + " | ".join([first] + r[1:]) + " |")
    return out


def console_layers(m: dict[str, Any]) -> str | None:
    """The console's layer line: each layer's total when there are few, and the one that stands out with its excess."""
    blocks, median, what = _layers(m)
    if not blocks:
        return None
    if len(blocks) > MAX_LAYER_ROWS:
        return f"  {_blocks_line(m)} (every layer: report.md)"
    out = set(m.get("outlier_blocks") or [])
    cells = ", ".join(f"{b['block']} {b['total_ms']:.3f}" + (f" (stands out, +{_excess(b, median):.3f} over the "
                                                              f"median)" if b["block"] in out else "")
                      for b in blocks)
    return f"  layers ({what}), ms per step: {cells}" + ("" if out or len(blocks) < 3 else
                                                         f"; none stands out (median {median:.3f})")


def _folds_line(m: dict[str, Any]) -> str | None:
    """What the "N other modules" row holds (the parts past the largest ones), largest first."""
    folded = next((r for r in m["parts"] if r.get("folds")), None)
    if folded is None:
        return None
    return f"{folded['part']}: " + ", ".join(folded["folds"]) + " (largest first)"


def _rates_line(m: dict[str, Any]) -> str | None:
    """Where the rates' FLOPs come from, for a model whose parts the tool does not know."""
    if not m.get("flops_source"):
        return None
    return (f"{_unit(m)[0]}: each part's FLOPs ({m['flops_source']}: matrix multiplications and attention only; "
            f"'-' where none were counted) over the part's time")


def _beside_line(m: dict[str, Any]) -> str | None:
    """Threads that do not run the model (gloo's collectives): their time, which is not part of the step's."""
    b = m.get("beside_the_step") or {}
    if not b.get("threads"):
        return None
    return (f"beside the step, on {b['threads']} other thread(s) (not in the total above): collectives "
            f"{b['collective_threads_ms']:.3f} ms per step, other work {b['other_threads_ms']:.3f} ms per step")


def _header(m: dict[str, Any]) -> str:
    return (f"by part of the model, grouped by {m['grouping'] if m['grouping'] != 'gpt2' else 'GPT-2 part'}: "
            f"{m['total_ms_per_step']:.3f} ms per step of {m['basis']}")


def text_lines(m: dict[str, Any]) -> list[str]:
    """What analyze_trace.py prints (and the unavailable reason when there are no module ranges)."""
    if "unavailable" in m:
        return [f"modules: not available: {m['unavailable']}"]
    unit, scale = _unit(m)
    names = short_names([r["part"] for r in _shown(m)], 32)  # never cut so that two rows read alike
    w = max([32, *map(len, names.values())])
    rec = any(r.get("recompute_ms") is not None for r in m["parts"])  # activation checkpointing
    lines = [f"modules: {_header(m)}",
             f"{'part':<{w}} {'fwd ms':>9} {'bwd ms':>9}" + (f" {'recomp ms':>9}" if rec else "")
             + f" {'total ms':>9} {'%':>5} {unit:>8} {'% peak':>6}"]
    for r in _shown(m):
        tflops, pct = _rate(r, scale)
        lines.append(f"{names[r['part']]:<{w}} {_ms(r['forward_ms']):>9} {_ms(r['backward_ms']):>9} "
                     + (f"{_ms(r.get('recompute_ms')):>9} " if rec else "")
                     + f"{r['total_ms']:>9.3f} {r['pct']:>5.1f} {tflops:>8} {pct:>6}")
    lines += [x for x in (_folds_line(m), _rates_line(m)) if x]
    lines += _layer_text(m)
    beside = _beside_line(m)
    if beside:
        lines.append(beside)
    if m.get("backward_without_forward_ms"):
        lines.append(f"backward whose forward ran before the trace began (counted outside any module): "
                     f"{m['backward_without_forward_ms']:.3f} ms per step")
    return lines


def markdown_lines(m: dict[str, Any]) -> list[str]:
    """The breakdown's section of report.md."""
    if "unavailable" in m:
        return [f"Per-module breakdown: not available ({m['unavailable']}).", ""]
    rec = any(r.get("recompute_ms") is not None for r in m["parts"])  # activation checkpointing
    out = [f"Per-module breakdown, {_header(m)}:", "",
           "| part | forward ms | backward ms | " + ("recompute ms | " if rec else "")
           + f"total ms | % | {_unit(m)[0]} | % of peak |",
           "|---|---:|---:|" + ("---:|" if rec else "") + "---:|---:|---:|---:|"]
    for r in _shown(m):
        tflops, pct = _rate(r, _unit(m)[1])
        out.append(f"| {r['part']} | {_ms(r['forward_ms'])} | {_ms(r['backward_ms'])} | "
                   + (f"{_ms(r.get('recompute_ms'))} | " if rec else "")
                   + f"{r['total_ms']:.3f} | {r['pct']:.1f} | {tflops} | {pct} |")
    notes = [x for x in (_folds_line(m), _rates_line(m)) if x]
    for x in notes:
        out += ["", f"{x[0].upper()}{x[1:]}."]
    layers, beside = layer_markdown(m), _beside_line(m)
    out += [""] + layers if layers else []
    return out + ([""] + [beside[0].upper() + beside[1:] + "."] if beside else []) + [""]


def console_line(m: dict[str, Any]) -> str | None:
    """The few largest parts, for the console summary; None when the breakdown is not available."""
    if "parts" not in m:
        return None
    rows = sorted(m["parts"], key=lambda r: -r["total_ms"])[:CONSOLE_PARTS]
    return "  modules (% of " + _of(m) + "): " + ", ".join(f"{r['part']} {r['pct']:.0f}%" for r in rows)
