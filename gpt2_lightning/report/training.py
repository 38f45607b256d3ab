"""What a training run's report adds (scripts/train.py): its title, the train and validation loss, a loss curve.

A profile's report is about time; a training run's is also about what it learned, so the loss comes first, beside
the timing. Report-side: reads results.json's ``train_loss``, ``val_loss`` and ``resumed_from`` only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gpt2_lightning.report.formats import fmt_count

LOSS_PLOT = "loss.png"
# a logged train loss is one batch's: two of them differ by more than the run learned (1.83 at step 309 -> 2.19 at
# step 599 while validation fell 1.72 -> 1.59). The first and last are quoted as means over this many logged steps.
LOSS_MEAN_OVER = 10


def loss_means(values: list[dict[str, Any]], k: int = LOSS_MEAN_OVER) -> dict[str, Any] | None:
    """The mean train loss over the first and over the last k logged steps (fewer when fewer were logged; non-finite
    losses left out and counted): {"k", "first", "first_steps", "last", "last_steps", "not_finite"}; None with no
    finite loss."""
    finite = [x for x in values if isinstance(x.get("loss"), (int, float)) and math.isfinite(x["loss"])]
    if not finite:
        return None
    k = max(1, min(k, len(finite) // 2))  # the first k and the last k never overlap
    head, tail = finite[:k], finite[-k:]
    return {"k": k, "first": sum(x["loss"] for x in head) / k, "first_steps": (head[0]["step"], head[-1]["step"]),
            "last": sum(x["loss"] for x in tail) / k, "last_steps": (tail[0]["step"], tail[-1]["step"]),
            "not_finite": len(values) - len(finite)}


def _steps(span: tuple[int, int]) -> str:
    return f"step {span[0]}" if span[0] == span[1] else f"steps {span[0]}-{span[1]}"


def train_loss_line(values: list[dict[str, Any]]) -> str | None:
    """train loss: mean of the first 10 logged steps (steps 9-99) 2.4561 -> of the last 10 (steps 209-299) 1.6093."""
    m = loss_means(values)
    if m is None:
        return None
    if m["first_steps"] == m["last_steps"]:  # one logged step: nothing to go from and to
        line = f"train loss: {m['first']:.4f} at step {m['first_steps'][0]} (the only logged step)"
    elif m["k"] > 1:
        line = (f"train loss: mean of the first {m['k']} logged steps ({_steps(m['first_steps'])}) {m['first']:.4f} "
                f"-> of the last {m['k']} ({_steps(m['last_steps'])}) {m['last']:.4f}")
    else:  # too few logged steps for a mean: say that these are single batches
        line = (f"train loss: {m['first']:.4f} at step {m['first_steps'][0]} -> {m['last']:.4f} at step "
                f"{m['last_steps'][0]} (single batches: too few logged steps for a mean)")
    return line + (f"; {m['not_finite']} logged step(s) not finite, left out" if m["not_finite"] else "")


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
    return fmt_count(n, 4) if isinstance(n, (int, float)) else "?"


def loss_section(data: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """report.md's "Training" section: first and last train and validation loss (and perplexity), the curve."""
    train = data.get("experiments", {}).get("train") or {}
    if not is_training_run(data) or not (train.get("train_loss") or train.get("val_loss")):
        return []
    out = ["## Training", "", "| | first | last |", "|---|---:|---:|"]
    m = loss_means(train.get("train_loss") or [])
    if m is not None and m["k"] > 1:  # means, not single batches: one batch's loss moves more than the run learns
        out.append(f"| train loss, mean of {m['k']} logged steps ({_steps(m['first_steps'])} → "
                   f"{_steps(m['last_steps'])}) | {m['first']:.4f} | {m['last']:.4f} |")
    elif m is not None and m["first_steps"] == m["last_steps"]:  # one logged step: said once
        out.append(f"| train loss (step {m['first_steps'][0]}, the only logged step) | {m['first']:.4f} | - |")
    elif m is not None:
        out.append(f"| train loss (step {m['first_steps'][0]} → {m['last_steps'][0]}) | {m['first']:.4f} | "
                   f"{m['last']:.4f} |")
    values = train.get("val_loss") or []
    if values:
        out.append(f"| validation loss (step {values[0]['step']} → {values[-1]['step']}) | {values[0]['loss']:.4f} | "
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
            ax.plot([p["step"] for p in points], [p["loss"] for p in points], style, label=name, markersize=4,
                    alpha=0.55 if name == "train" else 1.0)
    m = loss_means(train.get("train_loss") or [])
    if m is not None and m["k"] > 1:  # what the console and report.md quote, drawn where it was taken
        for mean, span in ((m["first"], m["first_steps"]), (m["last"], m["last_steps"])):
            ax.plot(span, [mean, mean], "-", color="black", linewidth=2)
        ax.plot([], [], "-", color="black", linewidth=2, label=f"train, mean of {m['k']} logged steps")
    finite = [p["loss"] for _, points, _ in curves for p in points
              if isinstance(p.get("loss"), (int, float)) and math.isfinite(p["loss"])]
    if finite:  # from 0 (a cross-entropy never goes below it) to above the highest point: nothing clipped
        ax.set_ylim(0, max(finite) * 1.08)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (cross-entropy)")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.suptitle(plot_title(data, "loss"), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return path
