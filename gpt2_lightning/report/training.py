"""What a training run's report adds (scripts/train.py): its title, the train and validation loss, a loss curve.

A profile's report is about time; a training run's is also about what it learned, so the loss comes first, beside
the timing. Report-side: reads results.json's ``train_loss``, ``val_loss`` and ``resumed_from`` only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

LOSS_PLOT = "loss.png"


def is_training_run(data: dict[str, Any]) -> bool:
    """train.py records its own settings under config["train"]; a profile does not."""
    return "train" in (data.get("config") or {})


def diverged_lines(data: dict[str, Any]) -> list[str]:
    """A warning when the train loss stopped being a finite number (null in results.json): the steps were timed, but
    on a model whose numbers blew up (fp16 without loss scaling, a learning rate too high)."""
    losses = (data.get("experiments", {}).get("train") or {}).get("train_loss") or []
    bad = [x["step"] for x in losses if not isinstance(x.get("loss"), (int, float)) or not math.isfinite(x["loss"])]
    if not bad:
        return []
    precision = (data.get("config") or {}).get("precision")
    return [f"WARNING: train: the loss was not a finite number from step {bad[0]} on ({len(bad)} of {len(losses)} "
            f"logged steps; precision {precision}): the model diverged, so these steps time NaN arithmetic, which "
            "need not run like real training. Quote a run whose loss stays finite."]


def title(data: dict[str, Any]) -> str:
    """``# GPT-2 profile: DIR``; a --module run is titled with its class and parameter count instead."""
    c = data.get("config") or {}
    model = "GPT-2"
    if c.get("module"):
        model = f"{c.get('model_class') or c.get('model')} ({fmt_params(c.get('num_params'))} parameters)"
    kind = "training run" if is_training_run(data) else "profile"
    return f"# {model} {kind}: {c.get('run_dir', '')}"


def fmt_params(n: Any) -> str:
    """124.4M, 196.9k, 1.56B: a parameter count as a title shows it."""
    if not isinstance(n, (int, float)):
        return "?"
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.4g}{unit}"
    return str(int(n))


def loss_section(data: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """report.md's "Training" section: first and last train and validation loss (and perplexity), the curve."""
    train = data.get("experiments", {}).get("train") or {}
    if not is_training_run(data) or not (train.get("train_loss") or train.get("val_loss")):
        return []
    out = ["## Training", "", "| | first | last |", "|---|---:|---:|"]
    for name, key in (("train loss", "train_loss"), ("validation loss", "val_loss")):
        values = train.get(key) or []
        if values:
            out.append(f"| {name} (step {values[0]['step']} → {values[-1]['step']}) | {values[0]['loss']:.4f} | "
                       f"{values[-1]['loss']:.4f} |")
    val = train.get("val_loss") or []
    if val and val[0].get("perplexity") is not None:
        out.append(f"| validation perplexity | {val[0]['perplexity']:.4g} | {val[-1]['perplexity']:.4g} |")
    out.append("")
    if train.get("resumed_from"):
        out += [f"Resumed from step {train['resumed_from']['step']} ({train['resumed_from']['checkpoint']}).", ""]
    if LOSS_PLOT in plots.values():
        out += [f"![loss curve]({LOSS_PLOT})", ""]
    return out


def plot_loss(data: dict[str, Any], path: Path) -> Path | None:
    """Train loss (the logged steps) and validation loss against the optimizer step; None for a profile run."""
    train = data.get("experiments", {}).get("train") or {}
    curves = [(name, train.get(key) or [], style) for name, key, style in (
        ("train", "train_loss", "-"), ("validation", "val_loss", "o-"))]
    if not is_training_run(data) or not any(points for _, points, _ in curves):
        return None
    from gpt2_lightning.report.plots import _title as plot_title
    from gpt2_lightning.report.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, points, style in curves:
        if points:
            ax.plot([p["step"] for p in points], [p["loss"] for p in points], style, label=name, markersize=4)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (cross-entropy)")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.suptitle(plot_title(data, "loss"), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path
