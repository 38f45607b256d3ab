"""Side-by-side comparison of two or more runs: what differs between them, what they measured, and whether each
difference is beyond the runs' own noise. Printed, and written as comparison.md and comparison.png.

A ratio means something only when the reader knows what else changed: the "settings that differ" block and the
warnings come first, then the table, whose every speed-up carries its range and a noise judgement
(gpt2_lightning.noise).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt2_lightning.costs import fmt_energy_per_token, fmt_usd, projection_line
from gpt2_lightning.noise import MIN_STEPS_TO_JUDGE, instability_lines
from gpt2_lightning.plots import plot_comparison
from gpt2_lightning.report import fmt_ms, fmt_range, fmt_rate, fmt_speedup, render_table
from gpt2_lightning.results import RunResults, atomic_write_text, compare, run_label


def load_runs(paths: list[str]) -> list[dict[str, Any]]:
    """Each results.json (or a run directory holding one), checked; ResultsError names the bad file."""
    runs = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = path / "results.json"
        runs.append(RunResults.load(path).to_dict())
    return runs


def labels_for(runs: list[dict[str, Any]], paths: list[str]) -> list[str]:
    """Short, distinct column names: the run directory's name, then parent/name, then a number if still equal."""
    dirs = [Path(r.get("config", {}).get("run_dir") or (Path(p).parent if p.endswith(".json") else Path(p)))
            for r, p in zip(runs, paths)]
    labels = [run_label(r, d.name) for r, d in zip(runs, dirs)]
    if len(set(labels)) < len(labels):
        labels = [f"{d.parent.name}/{label}" if labels.count(label) > 1 else label for d, label in zip(dirs, labels)]
    return [f"{i + 1}. {label}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


# ---------------------------------------------------------------------------------------------------- the table
def _value(row: dict[str, Any], v: float | None) -> str:
    if row["unit"] == "J":
        return fmt_energy_per_token(v)
    if row["unit"] == "$":
        return fmt_usd(v)
    return fmt_ms(v) if row["unit"] == "ms" else (fmt_rate(v) if v is not None else "-")


def _cell(row: dict[str, Any], i: int) -> str:
    """A run's figure with its p10-p90 range: 12.5 ms [11.9-13.4 ms]."""
    text = _value(row, row["values"][i])
    rng = row.get("ranges", [None] * len(row["values"]))[i]
    if rng is not None:
        text += f" [{fmt_range(_value(row, rng[0]), _value(row, rng[1]))}]"
    return text


def _ratio_cell(row: dict[str, Any], i: int) -> str:
    """A speed-up with its range and noise judgement: 3.28x [2.90x-3.61x] beyond noise, or ... ≈ within noise."""
    s = row["speedups"][i]
    if s is None:
        return "-"
    rng = row.get("speedup_ranges", [None] * len(row["values"]))[i]
    noise = row.get("noise", [None] * len(row["values"]))[i]
    text = fmt_speedup(s)
    if rng is not None:
        text += f" [{fmt_range(fmt_speedup(rng[0]), fmt_speedup(rng[1]))}]"
    if noise == "within noise":
        return text + " ≈ within noise"
    if noise:
        return f"{text} {noise}"
    if not row.get("has_spread", True):
        return text  # measured once per run (energy over one window, cost): no spread to judge by
    return f"{text} (not judged: under {MIN_STEPS_TO_JUDGE} steps)"


def format_comparison(labels: list[str], rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The comparison table: one row per figure; each run's figure [p10-p90], then each later run's speed-up over
    the first [its range] and whether it is beyond the runs' noise (gpt2_lightning.noise)."""
    header = ["figure", labels[0]]
    for label in labels[1:]:
        header += [label, f"{label} vs {labels[0]}"]
    body = []
    for r in rows:
        line = [r["label"].strip() if markdown else r["label"], _cell(r, 0)]
        for i in range(1, len(labels)):
            line += [_cell(r, i), _ratio_cell(r, i)]
        body.append(line)
    note = ("Times are medians of the counted steps, [p10-p90] their spread; rates are over the median step. "
            "Nx: speed-up over the first run (above 1 is faster; energy and $ rows: uses less), [its range when "
            "each run's step is anywhere in its p10-p90]; '≈ within noise' when that range holds 1, i.e. the runs' "
            "p10-p90 ranges overlap.")
    return render_table(header, body, markdown) + "\n\n" + note


# ------------------------------------------------------------------------------------------- settings that differ
def _model(c: dict[str, Any], e: dict[str, Any]) -> Any:
    overrides = [f"{k}={c[k]}" for k in ("n_layer", "n_head", "n_embd", "vocab_size") if c.get(k) is not None]
    return f"{c.get('model')} ({', '.join(overrides)})" if overrides else c.get("model")


# (setting, how to read it from (config, env)); the list first, then what else can change a figure
SETTINGS: tuple[tuple[str, Callable[[dict[str, Any], dict[str, Any]], Any]], ...] = (
    ("made by", lambda c, e: "train.py" if "train" in c else "profile.py"),
    ("model", _model),
    ("precision", lambda c, e: c.get("precision")),
    ("batch size", lambda c, e: c.get("batch_size")),
    ("sequence length", lambda c, e: c.get("seq_len")),
    ("compile", lambda c, e: c.get("compile")),
    ("profiler", lambda c, e: c.get("profiler")),
    ("strategy", lambda c, e: c.get("strategy")),
    ("devices x nodes", lambda c, e: f"{c.get('devices')} x {c.get('num_nodes', 1)}"),
    ("device", lambda c, e: f"{e.get('device_type')}: {e.get('device_name')}"),
    ("torch", lambda c, e: e.get("torch")),
    ("lightning", lambda c, e: e.get("lightning")),
    ("data", lambda c, e: c.get("data") or "synthetic"),
    ("steps", lambda c, e: f"{c.get('warmup_steps')} warm-up + {c.get('steps')} timed"),
    ("init on", lambda c, e: c.get("init_on")),
    ("torch threads", lambda c, e: e.get("torch_threads")),
    ("host", lambda c, e: e.get("hostname")),
)


def settings_table(runs: list[dict[str, Any]]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """(settings that differ, each with every run's value; settings the runs share, with the shared value)."""
    differ, same = [], []
    for name, read in SETTINGS:
        values = [str(read(r.get("config", {}), r.get("env", {}))) for r in runs]
        if len(set(values)) > 1:
            differ.append((name, values))
        else:
            same.append((name, values[0]))
    return differ, same


def _measured(run: dict[str, Any]) -> list[str]:
    return [e for e, r in run.get("experiments", {}).items() if isinstance(r, dict) and "error" not in r]


def warnings_for(runs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """What makes a ratio in the table mean less than it seems, one line each."""
    out = []
    profilers = [r.get("config", {}).get("profiler", "none") for r in runs]
    if len(set(p == "none" for p in profilers)) > 1:
        profiled = ", ".join(f"{lab} (--profiler {p})" for lab, p in zip(labels, profilers) if p != "none")
        out.append(f"WARNING: {profiled} ran under a profiler and the others did not: the profiler's overhead is "
                   "inside its times. Compare runs made the same way.")
    measured = [_measured(r) for r in runs]
    if len({tuple(m) for m in measured}) > 1:
        each = "; ".join(f"{lab}: {', '.join(m) or 'nothing'}" for lab, m in zip(labels, measured))
        out.append(f"WARNING: the runs measured different experiments ({each}): a figure missing from a run shows "
                   "'-'.")
    tools = {"train" in r.get("config", {}) for r in runs}
    if len(tools) > 1:
        out.append("WARNING: train.py and profile.py runs are mixed: train.py's steps run on real data with "
                   "validation and checkpoints between them, profile.py's on synthetic tokens alone.")
    shapes = {(r.get("config", {}).get("batch_size"), r.get("config", {}).get("seq_len")) for r in runs}
    if len(shapes) > 1:
        out.append("WARNING: batch size or sequence length differ: a step or forward pass does a different amount "
                   "of work in each run, so compare tokens/s rather than times.")
    for lab, r in zip(labels, runs):
        if r.get("status") not in (None, "complete"):
            out.append(f"WARNING: {lab} is {r.get('status')}: some of its experiments did not finish.")
        out += [f"{lab}: {line}" for line in instability_lines(r)]
    return out


def format_settings(runs: list[dict[str, Any]], labels: list[str], markdown: bool = False) -> str:
    """The "settings that differ" block, then one line naming what every run shares."""
    differ, same = settings_table(runs)
    shared = "; ".join(f"{name} {value}" for name, value in same)
    title = "## Settings that differ" if markdown else "Settings that differ:"
    if differ:
        block = render_table(["setting", *labels], [[name, *values] for name, values in differ], markdown,
                             numbers=False)
    else:
        block = "none: the runs were made with the same settings, on the same device and versions"
    return f"{title}\n\n{block}\n\nSame in every run: {shared or 'nothing'}."


def format_full(runs: list[dict[str, Any]], labels: list[str], rows: list[dict[str, Any]], markdown: bool = False
                ) -> str:
    """Settings that differ, warnings, then the table of figures."""
    parts = [format_settings(runs, labels, markdown)]
    warnings = warnings_for(runs, labels)
    if warnings:
        parts.append("\n".join(f"- {w}" if markdown else w for w in warnings))
    parts.append(("## Figures\n\n" if markdown else "") + format_comparison(labels, rows, markdown))
    return "\n\n".join(parts)


def write_comparison(runs: list[dict[str, Any]], labels: list[str], out_dir: Path) -> tuple[str, list[Path]]:
    """Print-ready text; writes comparison.md and comparison.png into out_dir (created if missing)."""
    rows = compare(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "comparison.md"
    png = out_dir / "comparison.png"
    headline_rows = [r for r in rows if not r["label"].startswith(" ") and r["unit"] == "ms"]
    plot_comparison(labels, headline_rows, png, title=comparison_title(runs, labels))
    # each run's time to train its token budget, by run directory name ("cpu 127 days, gpu 9.1 h")
    projection = projection_line([Path(r.get("config", {}).get("run_dir") or label).name
                                  for r, label in zip(runs, labels)], runs)
    extra = f"\n\n{projection}" if projection else ""
    atomic_write_text(md, "# Comparison\n\n" + format_full(runs, labels, rows, markdown=True) + extra
                      + f"\n\n![comparison]({png.name})\n")
    return format_full(runs, labels, rows) + extra, [md, png]


def comparison_title(runs: list[dict[str, Any]], labels: list[str]) -> str:
    """model · device · precision, each given once when shared and as "a vs b" when it differs."""
    def part(read: Callable[[dict[str, Any], dict[str, Any]], Any]) -> str:
        values = list(dict.fromkeys(str(read(r.get("config", {}), r.get("env", {}))) for r in runs))
        return " vs ".join(values)

    model = part(_model)
    device = part(lambda c, e: e.get("device_name"))
    precision = part(lambda c, e: c.get("precision"))
    others = [name for name, _ in settings_table(runs)[0] if name not in ("model", "device", "precision")]
    differ = f" · also differ: {', '.join(others)}" if others else ""
    return f"{model} · {device} · {precision} · runs: {', '.join(labels)}{differ}"
