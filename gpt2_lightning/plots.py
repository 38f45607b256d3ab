"""PNG plots of a run's results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from gpt2_lightning.report import fmt_rate, fmt_speedup  # noqa: E402

PHASE_COLORS = {
    "data": "#9e9e9e", "forward": "#1f77b4", "backward": "#ff7f0e", "optimizer": "#2ca02c", "other": "#d9d9d9",
    "init_model": "#1f77b4", "init_optimizer": "#2ca02c", "step": "#000000", "init": "#000000",
}
# which phases make up each experiment's whole, and what the whole is called
BREAKDOWN = {
    "init": (("init_model", "init_optimizer"), "init"),
    "inference": (("forward",), "forward"),
    "train": (("data", "forward", "backward", "optimizer"), "step"),
}


def _median(result: dict[str, Any], phase: str) -> float | None:
    stats = result.get("phases", {}).get(phase)
    return stats.get("median_ms") if stats and stats.get("n") else None


def plot_phase_breakdown(data: dict[str, Any], path: Path) -> Path | None:
    """One horizontal stacked bar per experiment: the median of each phase, and what the phases leave unexplained."""
    rows = []
    for exp, (parts, whole) in BREAKDOWN.items():
        result = data.get("experiments", {}).get(exp)
        if not result or "error" in result or _median(result, whole) is None:
            continue
        values = {p: _median(result, p) or 0.0 for p in parts}
        values["other"] = max(0.0, _median(result, whole) - sum(values.values()))
        rows.append((exp, values))
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.6 + 1.1 * len(rows)), squeeze=False)
    for ax, (exp, values) in zip(axes[:, 0], rows):
        left = 0.0
        for phase, ms in values.items():
            if ms <= 0:
                continue
            ax.barh([exp], [ms], left=left, color=PHASE_COLORS.get(phase, "#999999"), label=phase, edgecolor="white")
            total = sum(values.values())
            if ms / total > 0.08:
                ax.text(left + ms / 2, 0, f"{phase}\n{ms:.3g} ms", ha="center", va="center", fontsize=8)
            left += ms
        ax.set_xlabel("median time per step (ms)" if exp != "init" else "median time per build (ms)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.suptitle(_title(data), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_per_step(data: dict[str, Any], path: Path) -> Path | None:
    """Each step's phase times, warm-up steps drawn hollow: spikes and drifts show here, not in a median."""
    exps = [e for e in ("init", "inference", "train") if data.get("experiments", {}).get(e, {}).get("per_step")]
    if not exps:
        return None
    fig, axes = plt.subplots(1, len(exps), figsize=(4.5 * len(exps), 3.6), squeeze=False)
    for ax, exp in zip(axes[0], exps):
        steps = data["experiments"][exp]["per_step"]
        keys = [k for k in steps[0] if k.endswith("_ms")]
        for key in keys:
            phase = key[: -len("_ms")]
            xs = [s["step"] for s in steps]
            ys = [s.get(key) for s in steps]
            color = PHASE_COLORS.get(phase)
            ax.plot(xs, ys, "-", color=color, alpha=0.6, label=phase)
            for x, y, s in zip(xs, ys, steps):
                ax.plot([x], [y], "o", color=color, markerfacecolor="none" if s["warmup"] else color, markersize=4)
        _log_y(ax)
        ax.set_xlabel("build" if exp == "init" else "step")
        ax.set_ylabel("ms (log scale)")
        ax.set_title(f"{exp} (hollow: warm-up, not counted)", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(_title(data), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_comparison(labels: list[str], rows: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: each experiment's headline time, one bar per run, log scale (CPU and GPU differ by 100x)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(2.5 + 1.6 * len(rows), 4))
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        ys = [r["values"][i] if r["values"][i] is not None else 0 for r in rows]
        bars = ax.bar(x + i * width - 0.4 + width / 2, ys, width, label=label)
        for bar, r in zip(bars, rows):
            speedup = r["speedups"][i]
            if speedup is not None and i > 0:
                ax.annotate(fmt_speedup(speedup), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [r["label"] for r in rows], fontsize=8)
    _log_y(ax)
    ax.set_ylabel("median ms (log scale); label: speed-up vs first")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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


def _title(data: dict[str, Any]) -> str:
    c, e = data.get("config", {}), data.get("env", {})
    return (f"{c.get('model')} · {e.get('device_name')} · {c.get('precision')} · "
            f"B{c.get('batch_size')}×T{c.get('seq_len')}")


def plot_sweep(key: str, rows: list[dict[str, Any]], path: Path) -> Path:
    """Train tokens/s, MFU, step time (and J/token, when measured) against the swept setting (missing points:
    failed or unknown)."""
    panels = [("train tokens/s", "tokens/s"), ("train MFU %", "MFU %"), ("train step ms", "step ms (median)")]
    if any(r.get("train J/token") is not None for r in rows):  # energy was measured: J/token beside the rates
        panels.append(("train J/token", "J/token (train)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    labels = [str(r[key]) for r in rows]
    for ax, (column, ylabel) in zip(axes[0], panels):
        xs = [i for i, r in enumerate(rows) if r.get(column) is not None]
        ax.plot(xs, [rows[i][column] for i in xs], "o-")
        for i in xs:
            v = rows[i][column]
            text = fmt_rate(v) if column.endswith("tokens/s") else f"{v:.3g}"
            ax.annotate(text, (i, v), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
        ax.set_xticks(range(len(rows)), labels, fontsize=8, rotation=20)
        ax.set_xlabel(key)
        ax.set_ylabel(ylabel)
        if not xs:
            ax.text(0.5, 0.5, "unknown\n(no peak FLOP/s for this device)" if "MFU" in column else "not measured",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
