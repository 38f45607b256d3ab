"""The per-module breakdown grouped the way a reader thinks, with each part's FLOPs and how near the peak it runs.

``module_breakdown.attribute`` gives time per module, forward and backward; here it becomes the ``modules`` block of
results.json. For GPT-2 (module names ``transformer.h.<i>.attn.c_attn``, ...) the parts are: embeddings, attention
projections, the attention kernel (the attention module's own work: scaled_dot_product_attention and its reshapes),
MLP, layer norms, residual adds (the blocks' own work), output head, loss, other model code (the GPT module's own
work besides the loss), summed over the blocks. Any other model is grouped by module name with block indices folded
(``layers.*.ffn.w1 (Linear)``) and each module's class. Then two rows that belong to no module: the optimizer, and
everything outside any module (with several processes, a third: waiting for collectives). Every part has forward,
backward and (under activation checkpointing) recompute time.

For any model with a repeated layer list (modules named ``<list>.<N>`` all of one class: GPT-2's ``transformer.h.N``,
a Llama's ``model.layers.N``, ``blocks.N``) there is one row per layer, with what it and everything inside it took,
so that a layer that stands out is named. On a CPU trace each part and layer also has ``profiled_op_ms``: the part of
its forward, backward and recompute time spent inside operators (what the profiler slows; ``phase_scaling``). Plain
Python, no torch.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from gpt2_lightning.analysis.module_breakdown import (
    BACKWARD,
    FORWARD,
    OPTIMIZER,
    OUTSIDE,
    RECOMPUTE,
    UNAVAILABLE,
    WAITING,
    attribute,
)

OPTIMIZER_ROW, OUTSIDE_ROW, WAITING_ROW = "optimizer", "outside any module", "waiting for collectives"
NON_MODEL_ROWS = (OPTIMIZER_ROW, OUTSIDE_ROW, WAITING_ROW)  # the rows that are not parts of the model
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
_ANY_BLOCK = re.compile(r"\.(\d+)(?=\.|$)")
_NUMBERED = re.compile(r"^(.*)\.(\d+)$")
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


def layer_list(modules: Any) -> tuple[str, str] | None:
    """(path, class) of the model's repeated layer list among (module path, class) pairs: the modules named
    ``<path>.<N>``, at least two, all of one class; of several such lists the shallowest (a Llama's ``model.layers``,
    not the experts inside each layer), then the longest. None when there is none."""
    groups: dict[str, dict[int, set[str]]] = {}
    for path, cls in modules:
        m = _NUMBERED.match(path)
        if m:
            groups.setdefault(m.group(1), {}).setdefault(int(m.group(2)), set()).add(cls)
    lists = [(prefix, next(iter(set().union(*layers.values()))), len(layers)) for prefix, layers in groups.items()
             if len(layers) >= 2 and len(set().union(*layers.values())) == 1]
    if not lists:
        return None
    prefix, cls, _ = min(lists, key=lambda item: (item[0].count("."), -item[2], item[0]))
    return prefix, cls


def _block(path: str, layers: tuple[str, str] | None) -> int | None:
    """The layer of ``layers`` that a module path is in (the layer itself or anything inside it)."""
    if layers is None or not path.startswith(layers[0] + "."):
        return None
    head = path[len(layers[0]) + 1:].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def short_names(names: list[str], width: int) -> dict[str, str]:
    """Each name as a table shows it in about ``width`` characters, never cut so that two rows read alike: a longer
    name loses dotted components from the left ("...layers.*.mlp.down_proj (Linear)") and keeps its distinguishing
    tail; names that would then read alike get components back until they differ."""
    parts = {name: name.split(".") for name in names}

    def form(name: str, k: int) -> str:
        return name if k == 0 else "..." + ".".join(parts[name][k:])

    cut = {}
    for name in names:
        k = 0
        while len(form(name, k)) > width and k < len(parts[name]) - 1:
            k += 1
        cut[name] = k
    while True:
        seen: dict[str, list[str]] = {}
        for name in names:
            seen.setdefault(form(name, cut[name]), []).append(name)
        alike = [name for same in seen.values() if len(same) > 1 for name in same if cut[name] > 0]
        if not alike:
            return {name: form(name, cut[name]) for name in names}
        for name in alike:
            cut[name] -= 1


def summarize(c: Any, steps: list[tuple[int, float, float]]) -> dict[str, Any]:
    """The ``modules`` block of a trace (times only; ``add_flops`` adds FLOPs where the model's shape is known)."""
    attr = attribute(c, steps)
    if attr is None:
        return {"unavailable": UNAVAILABLE}
    per = 1000.0 * attr["steps"]  # us over all steps -> ms per step
    gpt2 = any(_GPT2_MARK.search(path) for _, path, _, _ in attr["rows"])
    layers = layer_list({(path, cls) for _, path, cls, _ in attr["rows"] if path})
    parts: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in (GPT2_PARTS if gpt2 else ())}
    blocks: dict[int, list[float]] = {}
    op_us = attr.get("op_us")  # CPU: the part of each row's time inside operators (analysis.phase_scaling)
    parts_op: dict[str, list[float]] = {}
    blocks_op: dict[int, list[float]] = {}
    optimizer = outside = waiting = 0.0
    for (kind, path, cls, op), us in attr["rows"].items():
        if kind == OPTIMIZER:
            optimizer += us
            continue
        if kind == WAITING:
            waiting += us
            continue
        if kind == OUTSIDE:
            outside += us
            continue
        part = gpt2_part(path, op) if gpt2 else generic_part(path, cls)
        column = {FORWARD: 0, BACKWARD: 1, RECOMPUTE: 2}[kind]
        parts.setdefault(part, [0.0, 0.0, 0.0])[column] += us
        block = _block(path, layers)
        if block is not None:
            blocks.setdefault(block, [0.0, 0.0, 0.0])[column] += us
        if op_us is not None:
            parts_op.setdefault(part, [0.0, 0.0, 0.0])[column] += op_us[(kind, path, cls, op)]
            if block is not None:
                blocks_op.setdefault(block, [0.0, 0.0, 0.0])[column] += op_us[(kind, path, cls, op)]
    total = attr["total_us"]
    has_backward = any(kind == BACKWARD for kind, _, _, _ in attr["rows"])  # none under inference_mode
    has_recompute = any(kind == RECOMPUTE for kind, _, _, _ in attr["rows"])  # activation checkpointing

    def row(name: str, fwd: float | None, bwd: float | None, rec: float | None, us: float) -> dict[str, Any]:
        return {"part": name, "forward_ms": None if fwd is None else fwd / per,
                "backward_ms": None if bwd is None or not has_backward else bwd / per,
                "recompute_ms": None if rec is None or not has_recompute else rec / per, "total_ms": us / per,
                "pct": 100.0 * us / total if total else 0.0}

    def op_ms(us: list[float] | None) -> dict[str, float] | None:  # CPU: time inside operators, per column
        if op_us is None:
            return None
        f, b, r = us or (0.0, 0.0, 0.0)
        return {"forward_ms": f / per, "backward_ms": b / per, "recompute_ms": r / per}

    ranked = sorted(parts.items(), key=lambda kv: -sum(kv[1]))
    if not gpt2 and len(ranked) > TOP_PARTS:
        rest = ranked[TOP_PARTS - 1:]
        parts_op[f"{len(rest)} other modules"] = [sum(parts_op.get(n, [0.0] * 3)[c] for n, _ in rest)
                                                  for c in range(3)]
        ranked = ranked[:TOP_PARTS - 1] + [(f"{len(rest)} other modules",
                                            [sum(v[c] for _, v in rest) for c in range(3)])]
    rows = [dict(row(name, f, b, r, f + b + r), profiled_op_ms=op_ms(parts_op.get(name)))
            for name, (f, b, r) in ranked]
    if not gpt2 and len(parts) > TOP_PARTS:  # what the last row folds, by name, largest first
        rows[-1]["folds"] = [name for name, _ in sorted(parts.items(), key=lambda kv: -sum(kv[1]))[TOP_PARTS - 1:]]
    rows += [row(OPTIMIZER_ROW, None, None, None, optimizer), row(OUTSIDE_ROW, None, None, None, outside)]
    if waiting:  # several processes: outside any module while a collective was in flight
        rows.insert(-1, row(WAITING_ROW, None, None, None, waiting))
    block_rows = [{"block": i, "name": f"{layers[0]}.{i}" if layers else str(i), "forward_ms": f / per,
                   "backward_ms": b / per if has_backward else None,
                   "recompute_ms": r / per if has_recompute else None, "total_ms": (f + b + r) / per,
                   "profiled_op_ms": op_ms(blocks_op.get(i))}
                  for i, (f, b, r) in sorted(blocks.items())]
    return {
        "grouping": "gpt2" if gpt2 else "module name and class",
        "basis": attr["basis"],
        "steps": attr["steps"],
        "total_ms_per_step": total / per,
        "parts": rows,
        "blocks": block_rows,
        "outlier_blocks": rank_layers(block_rows),
        "block_list": None if layers is None else {"path": layers[0], "class": layers[1]},
        # threads that do not run the model (gloo's collectives), beside the step and never added to its total
        "beside_the_step": {"collective_threads_ms": attr["beside"]["collective_threads_us"] / per,
                            "other_threads_ms": attr["beside"]["other_threads_us"] / per,
                            "threads": attr["beside"]["threads"]},
        "backward_without_forward_ms": attr["unlinked_backward_us"] / per,
        # CPU: the steps' time inside operators on the model's threads (the rest is Python, sleeps, waits)
        "profiled_op_ms_per_step": None if op_us is None else sum(op_us.values()) / per,
    }


def rank_layers(blocks: list[dict[str, Any]]) -> list[int]:
    """Each layer's ``excess_ms`` over the median layer, from its ``total_ms``; the layers that stand out. Called
    again whenever the totals change (a CPU breakdown scaled to the un-profiled step)."""
    if blocks:
        median = statistics.median(b["total_ms"] for b in blocks)
        for b in blocks:
            b["excess_ms"] = b["total_ms"] - median
    return _outliers(blocks)


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
