"""The per-module breakdown grouped the way a reader thinks, with each part's FLOPs and how near the peak it runs.

``module_breakdown.attribute`` gives time per module, forward and backward; here it becomes the ``modules`` block of
results.json. For GPT-2 (module names ``transformer.h.<i>.attn.c_attn``, ...) the parts are: embeddings, attention
projections, the attention kernel (the attention module's own work: scaled_dot_product_attention and its reshapes),
MLP, layer norms, residual adds (the blocks' own work), output head, loss, other model code (the GPT module's own
work besides the loss), summed over the blocks, plus one row per block so that an outlier block shows. Any other model
is grouped by module name with block indices folded (``layers.*.ffn.w1 (Linear)``) and each module's class. Then two
rows that belong to no module: the optimizer, and everything outside any module. Plain Python, no torch.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from gpt2_lightning.analysis.module_breakdown import BACKWARD, FORWARD, OPTIMIZER, OUTSIDE, UNAVAILABLE, attribute

OPTIMIZER_ROW, OUTSIDE_ROW = "optimizer", "outside any module"
GPT2_PARTS = ("embeddings", "attention projections", "attention kernel", "MLP", "layer norms", "residual adds",
              "output head", "loss", "other model code")
_GPT2_RULES = (  # (part, pattern on the module's path below the GPT module)
    ("attention projections", re.compile(r"(^|\.)h\.\d+\.attn\.(c_attn|c_proj)$")),
    ("attention kernel", re.compile(r"(^|\.)h\.\d+\.attn(\.[a-z_]*dropout)?$")),
    ("MLP", re.compile(r"(^|\.)h\.\d+\.mlp(\..+)?$")),
    ("layer norms", re.compile(r"(^|\.)(h\.\d+\.ln_\d|ln_f)$")),
    ("residual adds", re.compile(r"(^|\.)h\.\d+$")),
    ("embeddings", re.compile(r"(^|\.)transformer\.(wte|wpe|drop)$")),
    ("output head", re.compile(r"(^|\.)lm_head$")),
)
_GPT2_MARK = re.compile(r"(^|\.)transformer\.h\.\d+\.attn\.c_attn$")
_BLOCK = re.compile(r"(^|\.)h\.(\d+)(\.|$)")
_ANY_BLOCK = re.compile(r"\.(\d+)(?=\.|$)")
LOSS_OPS = ("cross_entropy", "nll_loss", "log_softmax", "mse_loss", "binary_cross_entropy", "_loss")
OUTLIER_BLOCK_RATIO = 1.5  # a block this many times the median block's time stands out
TOP_PARTS = 12  # other models: parts listed by time; the rest summed into one row


def gpt2_part(path: str, op: str) -> str:
    for part, pattern in _GPT2_RULES:
        if pattern.search(path):
            return part
    short = op.removeprefix("aten::")
    return "loss" if any(n in short for n in LOSS_OPS) else "other model code"


def generic_part(path: str, cls: str) -> str:
    return f"{_ANY_BLOCK.sub('.*', path)} ({cls})"


def _block(path: str, gpt2: bool) -> int | None:
    m = _BLOCK.search(path) if gpt2 else _ANY_BLOCK.search(path)
    return int(m.group(2) if gpt2 else m.group(1)) if m else None


def summarize(c: Any, steps: list[tuple[int, float, float]]) -> dict[str, Any]:
    """The ``modules`` block of a trace (times only; ``add_flops`` adds FLOPs where the model's shape is known)."""
    attr = attribute(c, steps)
    if attr is None:
        return {"unavailable": UNAVAILABLE}
    per = 1000.0 * attr["steps"]  # us over all steps -> ms per step
    gpt2 = any(_GPT2_MARK.search(path) for _, path, _, _ in attr["rows"])
    parts: dict[str, list[float]] = {name: [0.0, 0.0] for name in (GPT2_PARTS if gpt2 else ())}
    blocks: dict[int, list[float]] = {}
    optimizer = outside = 0.0
    for (kind, path, cls, op), us in attr["rows"].items():
        if kind == OPTIMIZER:
            optimizer += us
            continue
        if kind == OUTSIDE:
            outside += us
            continue
        part = gpt2_part(path, op) if gpt2 else generic_part(path, cls)
        column = 0 if kind == FORWARD else 1
        parts.setdefault(part, [0.0, 0.0])[column] += us
        block = _block(path, gpt2)
        if block is not None:
            blocks.setdefault(block, [0.0, 0.0])[column] += us
    total = attr["total_us"]
    has_backward = any(kind == BACKWARD for kind, _, _, _ in attr["rows"])  # none under inference_mode

    def row(name: str, fwd: float | None, bwd: float | None, us: float) -> dict[str, Any]:
        return {"part": name, "forward_ms": None if fwd is None else fwd / per,
                "backward_ms": None if bwd is None or not has_backward else bwd / per, "total_ms": us / per,
                "pct": 100.0 * us / total if total else 0.0}

    ranked = sorted(parts.items(), key=lambda kv: -sum(kv[1]))
    if not gpt2 and len(ranked) > TOP_PARTS:
        rest = ranked[TOP_PARTS - 1:]
        ranked = ranked[:TOP_PARTS - 1] + [(f"{len(rest)} other modules", [sum(v[0] for _, v in rest),
                                                                          sum(v[1] for _, v in rest)])]
    rows = [row(name, f, b, f + b) for name, (f, b) in ranked]
    rows += [row(OPTIMIZER_ROW, None, None, optimizer), row(OUTSIDE_ROW, None, None, outside)]
    block_rows = [{"block": i, "forward_ms": f / per, "backward_ms": b / per if has_backward else None,
                   "total_ms": (f + b) / per}
                  for i, (f, b) in sorted(blocks.items())]
    return {
        "grouping": "gpt2" if gpt2 else "module name and class",
        "basis": attr["basis"],
        "steps": attr["steps"],
        "total_ms_per_step": total / per,
        "parts": rows,
        "blocks": block_rows,
        "outlier_blocks": _outliers(block_rows),
        "backward_without_forward_ms": attr["unlinked_backward_us"] / per,
    }


def _outliers(blocks: list[dict[str, Any]]) -> list[int]:
    if len(blocks) < 3:
        return []
    median = statistics.median(b["total_ms"] for b in blocks)
    return [b["block"] for b in blocks if median > 0 and b["total_ms"] > OUTLIER_BLOCK_RATIO * median]


def add_flops(modules: dict[str, Any], train_flops: dict[str, float], tokens_per_step: int, training: bool,
              peak_tflops: float | None, matmul_parts: tuple[str, ...]) -> dict[str, Any]:
    """Each part's FLOPs per step (forward a third of training, backward two thirds); for the parts whose FLOPs are
    matmul work (``matmul_parts``), the achieved TFLOP/s over the part's time and its share of the device's peak (null
    without a peak). ``train_flops``: training FLOPs per token per part (``flops.part_train_flops_per_token``)."""
    if "parts" not in modules:
        return modules
    for row in modules["parts"]:
        per_token = train_flops.get(row["part"])
        if per_token is None:
            continue
        flops = per_token * tokens_per_step * (1.0 if training else 1.0 / 3.0)
        seconds = row["total_ms"] / 1000.0
        matmul = row["part"] in matmul_parts
        tflops = flops / seconds / 1e12 if matmul and seconds > 0 and flops > 0 else None
        row.update(flops_per_step=flops, matmul=matmul, tflops=tflops,
                   pct_of_peak=None if tflops is None or not peak_tflops else 100.0 * tflops / peak_tflops)
    modules["peak_tflops"] = peak_tflops
    return modules
