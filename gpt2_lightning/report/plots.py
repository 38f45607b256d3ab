"""PNG plots of a run's results (matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from gpt2_lightning.report.atomic_files import atomic_write_bytes  # noqa: E402
from gpt2_lightning.report.formats import fmt_ms, fmt_rate, fmt_speedup  # noqa: E402

PHASE_COLORS = {
    "data": "#9e9e9e", "forward": "#1f77b4", "backward": "#ff7f0e", "optimizer": "#2ca02c", "other": "#d9d9d9",
    "init_model": "#1f77b4", "init_optimizer": "#2ca02c", "step": "#000000", "init": "#000000",
    "construct": "#9467bd",  # purple: the init panel's blue is init_model's
}
# for a phase not named above: distinct from the others' colours and from each other (matplotlib's own cycle would
# give a new colour to every marker, and start at init_model's blue)
SPARE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")


def phase_colors(phases: list[str]) -> dict[str, str]:
    """One colour per phase of a panel, each distinct: the phase's own, else a spare one no other phase there has."""
    out = {p: PHASE_COLORS[p] for p in phases if p in PHASE_COLORS}
    spare = [c for c in SPARE_COLORS if c not in out.values()]
    for p in phases:
        if p not in out:
            out[p] = spare.pop(0) if spare else "#999999"
    return out
# which phases make up each experiment's whole, and what the whole is called
BREAKDOWN = {
    "init": (("init_model", "init_optimizer"), "init"),
    "inference": (("forward",), "forward"),
    "train": (("data", "forward", "backward", "optimizer"), "step"),
}


def _median(result: dict[str, Any], phase: str) -> float | None:
    stats = result.get("phases", {}).get(phase)
    return stats.get("median_ms") if stats and stats.get("n") else None


def median_step_split(result: dict[str, Any], parts: tuple[str, ...], whole: str) -> dict[str, float] | None:
    """The median step split into its own phases, so that the parts add up to the median step exactly.

    Medians of the parts do not add up to the median step (on a noisy machine the gap can be a tenth of it), so the
    bar is the step whose whole is the median (with an even count, the two middle steps, averaged phase by phase:
    their mean is the median). ``other`` is that step's time outside the named phases. None without per-step times.
    """
    steps = sorted((s for s in result.get("per_step") or [] if not s.get("warmup") and s.get(f"{whole}_ms") is not None),
                   key=lambda s: s[f"{whole}_ms"])
    if not steps:
        return None
    mid = len(steps) // 2
    middle = steps[mid:mid + 1] if len(steps) % 2 else steps[mid - 1:mid + 1]
    split = {p: sum(s.get(f"{p}_ms") or 0.0 for s in middle) / len(middle) for p in parts}
    split["other"] = sum(s[f"{whole}_ms"] for s in middle) / len(middle) - sum(split.values())
    return split


def phase_bars(data: dict[str, Any]) -> list[tuple[str, dict[str, float], float, bool]]:
    """(experiment, the bar's segments, the median it is titled with, whether the bar is the median step's own split)
    for each experiment with a median. Without per-step times the segments are the phase medians, which need not
    add up to the title's median; the panel then says so."""
    rows = []
    for exp, (parts, whole) in BREAKDOWN.items():
        result = data.get("experiments", {}).get(exp)
        if not result or "error" in result or _median(result, whole) is None:
            continue
        split = median_step_split(result, parts, whole)
        if split is None:
            split = {p: _median(result, p) or 0.0 for p in parts}
        rows.append((exp, split, _median(result, whole), "per_step" in result and bool(result["per_step"])))
    return rows


def plot_phase_breakdown(data: dict[str, Any], path: Path) -> Path | None:
    """One horizontal stacked bar per experiment: the median step (build, forward pass) split into its own phases,
    ending where the title's median is (see median_step_split)."""
    rows = phase_bars(data)
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.7 + 1.2 * len(rows)), squeeze=False)
    for ax, (exp, values, whole_ms, own_split) in zip(axes[:, 0], rows):
        left, total = 0.0, sum(max(0.0, v) for v in values.values())
        for phase, ms in values.items():
            if ms <= 0:
                continue
            ax.barh([exp], [ms], left=left, color=PHASE_COLORS.get(phase, "#999999"), label=phase, edgecolor="white")
            if ms / total > 0.08:
                ax.text(left + ms / 2, 0, f"{phase}\n{fmt_ms(ms)}", ha="center", va="center", fontsize=8)
            left += ms
        unit = "build" if exp == "init" else ("forward pass" if exp == "inference" else "step")
        ax.set_xlabel(f"ms of the median {unit}")
        how = (f"the bar is that {unit}'s own phases" if own_split else
               "phase medians, which need not add up to it (no per-step times)")
        ax.set_title(f"{exp}: median {unit} {fmt_ms(whole_ms)}; {how}", fontsize=9, loc="left")
        if left > 0:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.suptitle(_title(data, "the median step split into its phases (phase medians: report.md)"), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_per_step(data: dict[str, Any], path: Path) -> Path | None:
    """Each step's phase times, warm-up steps drawn hollow: spikes and drifts show here, not in a median."""
    exps = [e for e in ("init", "inference", "train") if data.get("experiments", {}).get(e, {}).get("per_step")]
    if not exps:
        return None
    fig, axes = plt.subplots(1, len(exps), figsize=(4.5 * len(exps), 3.9), squeeze=False)
    for ax, exp in zip(axes[0], exps):
        steps = data["experiments"][exp]["per_step"]
        keys = [k for k in steps[0] if k.endswith("_ms")]
        colors = phase_colors([k[: -len("_ms")] for k in keys])
        for key in keys:
            phase = key[: -len("_ms")]
            xs = [s["step"] for s in steps]
            ys = [s.get(key) for s in steps]
            color = colors[phase]  # the line, its markers and its legend entry alike
            ax.plot(xs, ys, "-", color=color, alpha=0.6, label=phase)
            for x, y, s in zip(xs, ys, steps):
                ax.plot([x], [y], "o", color=color, markerfacecolor="none" if s["warmup"] else color, markersize=4)
        _log_y(ax)
        ax.set_xlabel("build" if exp == "init" else "step")
        ax.set_ylabel("ms (log scale)")
        ax.set_title(f"{exp} (hollow: warm-up, not counted)", fontsize=9)
        # below the panel, never over a line: inside, "best" still covered the train run's data line
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.suptitle(_title(data), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_comparison(labels: list[str], rows: list[dict[str, Any]], ylabel: str, path: Path, title: str = ""
                    ) -> Path:
    """Grouped bars: each experiment's headline figure (a time, or tokens/s when the runs' shapes differ), one bar per
    run, its range as whiskers, log scale (CPU and GPU differ by 100x). Each later bar is labelled with its speed-up
    over the first, "≈" when within noise."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6.0, 2.8 + 1.8 * len(rows)), 4.4))
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        ys = [r["values"][i] if r["values"][i] is not None else 0 for r in rows]
        ranges = [r.get("ranges", [None] * len(labels))[i] for r in rows]
        err = np.array([[y - rg[0], rg[1] - y] if rg else [0, 0] for y, rg in zip(ys, ranges)]).T
        bars = ax.bar(x + i * width - 0.4 + width / 2, ys, width, label=label, yerr=err, capsize=3,
                      error_kw={"elinewidth": 0.8, "ecolor": "#444444"})
        for bar, r, y, rg in zip(bars, rows, ys, ranges):
            speedup = r["speedups"][i]
            if speedup is None or i == 0 or not y:
                continue
            within = r.get("noise", [None] * len(labels))[i] == "within noise"
            text = ("≈ " if within else "") + fmt_speedup(speedup)
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, max(rg[1], y) if rg else y), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7, annotation_clip=False)
    ax.set_xticks(x, [r["label"] for r in rows], fontsize=8)
    _log_y(ax)
    low, high = ax.get_ylim()
    smallest = min((v for r in rows for v in r["values"] if v), default=low)
    # room above the tallest bar for its label, and below the shortest so that every bar shows (log scale)
    ax.set_ylim(min(low, smallest / 3), high * 2.5)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.set_title(title or "comparison", fontsize=9)
    return save_with_footnote(fig, path, "label: speed-up over the first run (above 1: faster); ≈: within noise\n"
                              "whiskers: p10-p90 of the steps, or lowest-highest repeat (comparison.md)")


def save_with_footnote(fig: Any, path: Path, footnote: str) -> Path:
    """Two lines of small grey text under the plot, kept clear of it; the PNG written whole and the figure closed."""
    fig.text(0.01, 0.005, footnote, fontsize=6.5, color="#555555")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path)
    return path


def save_figure(fig: Any, path: Path) -> None:
    """Render to memory, then write the PNG whole (temp file + rename): a full disk never leaves half a PNG under
    its final name. The figure is closed either way."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _log_y(ax: Any) -> None:
    """Log-scale y axis labelled with plain numbers (10, 20, 50) rather than powers of ten; call after plotting.

    Minor ticks get labels only when the axis spans less than a decade or so: otherwise they pile up."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    low, high = ax.get_ylim()
    if low > 0 and high / low < 30:
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
    else:
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _title(data: dict[str, Any], what: str = "") -> str:
    """model · device · precision · shape · what the figure shows (the experiment, or all of them)."""
    c, e = data.get("config", {}), data.get("env", {})
    experiments = what or ", ".join(data.get("experiments", {})) or "no experiment"
    return (f"{c.get('model')} · {e.get('device_name')} · {c.get('precision')} · "
            f"B{c.get('batch_size')}×T{c.get('seq_len')} · {experiments}")


def sweep_panels(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(column, y label) of each panel that has at least one value: a CPU sweep has no MFU panel, a sweep without
    energy readings no J/token panel."""
    panels = [(c, y) for c, y in (("train tokens/s", "tokens/s"), ("train MFU %", "MFU %"),
                                   ("train step ms", "step ms (median, whiskers p10-p90)"),
                                   ("train J/token", "J/token (train)"))
              if any(r.get(c) is not None for r in rows)]
    return panels or [("train step ms", "step ms")]


def plot_sweep(key: str, rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Train tokens/s, MFU, step time (and J/token, when measured) against the swept setting; a panel with no value
    at all (MFU on a CPU) is left out, a missing point (failed, unknown) is a gap."""
    panels = sweep_panels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), squeeze=False)
    labels = [str(r[key]) for r in rows]
    for ax, (column, ylabel) in zip(axes[0], panels):
        xs = [i for i, r in enumerate(rows) if r.get(column) is not None]
        ys = [rows[i][column] for i in xs]
        ax.plot(xs, ys, "o-")
        tops = list(ys)  # where each value's label goes: above its whisker, never across it
        if column == "train step ms":
            spans = [rows[i].get("train step p10-p90 ms") for i in xs]
            if all(spans):
                ax.errorbar(xs, ys, yerr=[[y - s[0] for y, s in zip(ys, spans)], [s[1] - y for y, s in zip(ys, spans)]],
                            fmt="none", ecolor="#444444", capsize=3, elinewidth=0.8)
                tops = [max(y, s[1]) for y, s in zip(ys, spans)]
        for i, v, top in zip(xs, ys, tops):
            text = fmt_rate(v) if column.endswith("tokens/s") else fmt_ms(v) if column.endswith(" ms") else f"{v:.3g}"
            if column == "train step ms" and rows[i].get("noise", {}).get("train", {}).get("unstable"):
                text += " (unstable)"
            ax.annotate(text, (i, top), textcoords="offset points", xytext=(0, 5), ha="center", va="bottom",
                        fontsize=7, annotation_clip=False)
        ax.margins(x=0.15, y=0.2)  # room for the first and last labels and the one above the highest point
        ax.set_xticks(range(len(rows)), labels, fontsize=8, rotation=20)
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        if not xs:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
    fig.suptitle(title or f"sweep over {key}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path
