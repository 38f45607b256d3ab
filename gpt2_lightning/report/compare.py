"""Side-by-side comparison of two or more runs: what differs between them, what they measured, and whether each
difference is beyond the runs' own noise. Printed, and written as comparison.md and comparison.png.

A ratio means something only when the reader knows what else changed: the "settings that differ" block and a line
counting the warnings come first, then the table (the warnings themselves right after it), whose every speed-up
carries its range and a noise judgement (gpt2_lightning.report.noise).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpt2_lightning.report.costs import fmt_energy_per_token, fmt_usd, projection_line
from gpt2_lightning.report.judgement import (REPEATS, STEPS, TOO_FEW_REPEATS, false_alarm, min_effect_repeats,
                                             min_effect_single)
from gpt2_lightning.report.comparison_settings import (  # noqa: F401 - the settings block, imported from here too
    format_settings, model_setting, settings_table, shapes_differ, warnings_for)
from gpt2_lightning.report.noise import WITHIN_NOISE, repeat_count
from gpt2_lightning.report.formats import fmt_ms, fmt_range, fmt_rate, fmt_speedup, render_table
from gpt2_lightning.report.results import RunResults, atomic_write_text, compare, run_label


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
def value_text(row: dict[str, Any], v: float | None) -> str:
    """A figure of a comparison row, in its own unit."""
    if row["unit"] == "J":
        return fmt_energy_per_token(v)
    if row["unit"] == "$":
        return fmt_usd(v)
    if row["unit"] == "us":  # time per token
        return "-" if v is None else (fmt_ms(v / 1000) if v >= 1000 else f"{v:.3g} µs")
    return fmt_ms(v) if row["unit"] == "ms" else (fmt_rate(v) if v is not None else "-")


def _cell(row: dict[str, Any], i: int) -> str:
    """A run's figure with its p10-p90 range: 12.5 ms [11.9-13.4 ms]."""
    text = value_text(row, row["values"][i])
    rng = row.get("ranges", [None] * len(row["values"]))[i]
    if rng is not None:
        text += f" [{fmt_range(value_text(row, rng[0]), value_text(row, rng[1]))}]"
    return text


def _ratio_cell(row: dict[str, Any], i: int) -> str:
    """A speed-up with its range and noise judgement: 3.28x [2.90x-3.61x] beyond noise, or ... ≈ within noise."""
    s = row["speedups"][i]
    if s is None:
        return "-"
    rng = row.get("speedup_ranges", [None] * len(row["values"]))[i]
    noise = row.get("noise", [None] * len(row["values"]))[i]
    note = row.get("notes", [None] * len(row["values"]))[i]
    text = fmt_speedup(s)
    if rng is not None:
        text += f" [{fmt_range(fmt_speedup(rng[0]), fmt_speedup(rng[1]))}]"
    if noise == WITHIN_NOISE:
        return text + " ≈ within noise" + (f" ({note})" if note else "")
    if noise:
        return f"{text} {noise}"
    if not row.get("has_spread", True):
        return text  # measured once per run (energy over one window, cost): no spread to judge by
    return f"{text} (not judged: {note or 'no spread'})"


def judgement_note(rows: list[dict[str, Any]], runs: list[dict[str, Any]], labels: list[str]) -> str:
    """What the ranges and "beyond noise" mean in this table: between repeats, or within runs (noise unknown). The
    chance of a false alarm is stated for the repeat counts the table actually judged."""
    bases = {b for r in rows for b in r.get("basis", []) if b}
    repeats = [max((repeat_count(x) for x in run.get("experiments", {}).values() if isinstance(x, dict)), default=0)
               for run in runs]
    lines = ["Times are medians, rates are over the median time. Nx: speed-up over the first run (above 1 is faster; "
             "energy and $ rows: uses less), [its range when each run is anywhere in its own range]."]
    if REPEATS in bases:
        judged = sorted({tuple(c) for r in rows for c, why in zip(r.get("counts", []), r.get("why", []))
                         if c and why != TOO_FEW_REPEATS}, reverse=True)
        chance = (", ".join(f"{false_alarm(m, n):.1%} at {m} against {n}" for m, n in judged) if judged
                  else "none judged: too few repeats")
        lines.append(f"Repeated runs ({', '.join(f'{lab}: {k}' for lab, k in zip(labels, repeats) if k)} repeats, "
                     "each a fresh process): a figure is the median of the repeats' medians, [range] the lowest to "
                     "highest repeat. Beyond noise: every repeat of one run beats every repeat of the other (by "
                     f"chance, for identical settings: {chance}), by at least "
                     f"{min_effect_repeats([run.get('env', {}).get('device_type') for run in runs]):.0%}.")
    if STEPS in bases:
        single = [lab for lab, k in zip(labels, repeats) if not k] or labels
        floors = sorted({min_effect_single([run.get("env", {}).get("device_type")], "*") for run in runs})
        lines.append(f"Between-run noise unknown ({', '.join(single)}: no repeats): [range] is the p10-p90 of one "
                     "run's steps, which misses what moves between processes. Beyond noise: the ranges apart and the "
                     f"speed-up past the minimum effect for single runs ({' / '.join(f'{f:.0%}' for f in floors)} "
                     "here; docs/comparisons.md#repeats-and-what-beyond-noise-means). Run both with --repeat 5 to "
                     "judge on between-run noise.")
    return "\n".join(lines)


def format_comparison(labels: list[str], rows: list[dict[str, Any]], runs: list[dict[str, Any]],
                      markdown: bool = False) -> str:
    """The comparison table: one row per figure; each run's figure [p10-p90], then each later run's speed-up over
    the first [its range] and whether it is beyond the runs' noise (gpt2_lightning.report.noise)."""
    header = ["figure", labels[0]]
    for label in labels[1:]:
        header += [label, f"{label} vs {labels[0]}"]
    body = []
    for r in rows:
        line = [r["label"].strip() if markdown else r["label"], _cell(r, 0)]
        for i in range(1, len(labels)):
            line += [_cell(r, i), _ratio_cell(r, i)]
        body.append(line)
    ratios = tuple(range(3, len(header), 2))  # "change vs main": a speed-up, its range and a judgement, a phrase
    return render_table(header, body, markdown, text_columns=ratios) + "\n\n" + judgement_note(rows, runs, labels)


def format_full(runs: list[dict[str, Any]], labels: list[str], rows: list[dict[str, Any]], markdown: bool = False
                ) -> str:
    """Settings that differ, one line saying how many warnings there are, the table of figures, then the warnings.

    The warnings (a planted delay, a busy runner's every experiment, a straggler...) can run to a dozen lines: before
    the table they pushed it off the screen. One line before it still says, before any ratio is read, that there are
    warnings and where; each is given in full right after the table and its note."""
    parts = [format_settings(runs, labels, markdown)]
    warnings = warnings_for(runs, labels)
    if warnings:
        bold = "**" if markdown else ""
        parts.append(f"{bold}{warnings_heads_up(len(warnings), markdown)}{bold}")
    parts.append(("## Figures\n\n" if markdown else "") + format_comparison(labels, rows, runs, markdown))
    if warnings:
        parts.append(("## Warnings\n\n" if markdown else "Warnings:\n")
                     + "\n".join(f"- {w}" if markdown else w for w in warnings))
    return "\n\n".join(parts)


def warnings_heads_up(n: int, markdown: bool = False) -> str:
    """"3 warnings about these runs, under the table: read them before quoting a ratio from it"."""
    where = "under the table (Warnings)" if markdown else "under the table"
    return f"{n} warning{'s' if n != 1 else ''} about these runs, {where}: read {'them' if n != 1 else 'it'} before " \
           "quoting a ratio from it."


def write_comparison(runs: list[dict[str, Any]], labels: list[str], out_dir: Path) -> tuple[str, list[Path]]:
    """Print-ready text; writes comparison.md and comparison.png into out_dir (created if missing)."""
    rows = compare(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "comparison.md"
    png = out_dir / "comparison.png"
    from gpt2_lightning.report.plots import plot_comparison  # matplotlib: only when a plot is drawn

    plot_comparison(labels, *plotted_rows(runs, rows), png, title=comparison_title(runs, labels))
    # each run's time to train its token budget, by run directory name ("cpu 127 days, gpu 9.1 h")
    projection = projection_line([Path(r.get("config", {}).get("run_dir") or label).name
                                  for r, label in zip(runs, labels)], runs)
    extra = f"\n\n{projection}" if projection else ""
    atomic_write_text(md, "# Comparison\n\n" + format_full(runs, labels, rows, markdown=True) + extra
                      + f"\n\n![comparison]({png.name})\n")
    return format_full(runs, labels, rows) + extra, [md, png]


def plotted_rows(runs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows comparison.png draws and its y label: each experiment's headline time, or, when the batch shapes
    differ (a step then does a different amount of work in each run), tokens/s."""
    if shapes_differ(runs):
        rates = [r for r in rows if r["key"].endswith(": tokens/s")]
        if rates:
            return rates, "tokens/s (log scale); batch shapes differ: rates, not times"
    return [r for r in rows if not r["key"].startswith(" ") and r["unit"] == "ms" and "slowest rank" not in r["key"]
            ], "median ms (log scale)"


def comparison_title(runs: list[dict[str, Any]], labels: list[str]) -> str:
    """model · device · precision, each given once when shared and as "a vs b" when it differs."""
    def part(read: Callable[[dict[str, Any], dict[str, Any]], Any]) -> str:
        values = list(dict.fromkeys(str(read(r.get("config", {}), r.get("env", {}))) for r in runs))
        return " vs ".join(values)

    model = part(model_setting)
    device = part(lambda c, e: e.get("device_name"))
    precision = part(lambda c, e: c.get("precision"))
    others = [name for name, _ in settings_table(runs)[0] if name not in ("model", "device", "precision")]
    differ = f" · also differ: {', '.join(others)}" if others else ""
    return f"{model} · {device} · {precision} · runs: {', '.join(labels)}{differ}"
