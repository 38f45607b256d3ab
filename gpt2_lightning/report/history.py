"""A trend over many runs of the same settings (a folder of runs, e.g. one per commit of a nightly job): a table and a
plot of tokens/s with each run's range, in commit or time order, with every change beyond noise marked.

Runs are ordered by the commit time of the code they measured (``env.git``), then by when they were made; each run is
judged against the one before it exactly as compare.py judges two runs (gpt2_lightning.report.judgement): between repeats
when both were made with ``--repeat``, otherwise on their steps with the between-run noise unknown.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from gpt2_lightning.report.comparison_settings import commit_text, planted_delay, settings_table
from gpt2_lightning.report.noise import BEYOND_NOISE, repeat_count
from gpt2_lightning.report.formats import fmt_range, fmt_rate, fmt_speedup, render_table
from gpt2_lightning.report.gate import mismatched
from gpt2_lightning.report.results import ResultsError, RunResults, compare
from gpt2_lightning.report.run_folders import runs_below

FIGURES = ("train: tokens/s", "inference: tokens/s")


def load_history(folder: Path) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """(name relative to the folder, results) of every run below it in commit, then time, order; and one line per
    run that could not be read."""
    runs, skipped = [], []
    for run_dir in runs_below(folder):
        try:
            runs.append((str(run_dir.relative_to(folder)), RunResults.load(run_dir / "results.json").to_dict()))
        except ResultsError as e:
            skipped.append(f"skipped: {e}")

    by_commit = bool(runs) and all(utc_time(commit_time(d)) for _, d in runs)  # else time order: mixed keys
    return sorted(runs, key=lambda r: (utc_time(commit_time(r[1])) if by_commit else _EPOCH,
                                       utc_time(r[1].get("created")) or _EPOCH)), skipped


def commit_time(data: dict[str, Any]) -> str | None:
    return (data.get("env", {}).get("git") or {}).get("commit_time")


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def utc_time(text: Any) -> _dt.datetime | None:
    """An ISO 8601 time as an instant in UTC (a time without an offset is taken as UTC); None when unreadable. Times
    written with different offsets (commits made in different time zones) compare by the instant, not the text."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)).astimezone(_dt.timezone.utc)


def run_marks(data: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """What sets a run apart from the trend: a planted delay, settings of the work that differ from the first run's."""
    marks = ["planted delay"] if planted_delay(data.get("config", {})) else []
    differ = mismatched(settings_table([first, data])[0])
    return marks + [f"{name} differs" for name, _ in differ]


def tick_labels(rows: list[dict[str, Any]]) -> list[str]:
    """One label per run on the plot's axis: its commit, with the run's name where a commit is measured more than
    once (nightly reruns of one commit), and the name alone without a commit; a run with a planted delay or other
    settings of the work gets "(!) " and what differs on a line of its own."""
    commits = [r["commit"] for r in rows]
    labels = [r["run"] if c == "-" else f"{c}\n{r['run']}" if commits.count(c) > 1 else c
              for r, c in zip(rows, commits)]
    return [f"{label}\n(!) {', '.join(r['marks'])}" if r.get("marks") else label for r, label in zip(rows, labels)]


def history_rows(runs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per run: its figures with their ranges and, against the run before, each figure's ratio and judgement."""
    rows = []
    for i, (name, data) in enumerate(runs):
        pair = compare([runs[i - 1][1], data]) if i else compare([data])
        by_label = {r["key"]: r for r in pair}
        row: dict[str, Any] = {"run": name, "commit": commit_text(data.get("env", {})), "created": data.get("created"),
                               "marks": run_marks(data, runs[0][1]),
                               "repeats": max((repeat_count(x) for x in data.get("experiments", {}).values()
                                               if isinstance(x, dict)), default=0)}
        for figure in FIGURES:
            r = by_label.get(figure)
            k = 1 if i else 0
            row[figure] = None if r is None else {
                "value": r["values"][k], "range": r["ranges"][k],
                "ratio": r["speedups"][k] if i else None, "ratio_range": r["speedup_ranges"][k] if i else None,
                "noise": r["noise"][k] if i else None, "note": r["notes"][k] if i else None}
        rows.append(row)
    return rows


def _change(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("ratio") is None:
        return "-"
    rng = cell["ratio_range"]
    text = fmt_speedup(cell["ratio"]) + (f" [{fmt_range(fmt_speedup(rng[0]), fmt_speedup(rng[1]))}]" if rng else "")
    if cell["noise"] == BEYOND_NOISE:
        return f"{text} {'FASTER' if cell['ratio'] > 1 else 'SLOWER'}, beyond noise"
    return text + (" ≈ within noise" if cell["noise"] else f" (not judged: {cell['note'] or 'no spread'})")


def format_history(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    figures = [f for f in FIGURES if any(r[f] for r in rows)]
    header = ["run", "commit", "made", "repeats"]
    for f in figures:
        header += [f, "vs previous"]
    body = []
    for r in rows:
        line = [r["run"], r["commit"], (r["created"] or "-")[:16], str(r["repeats"] or 1)]
        for f in figures:
            cell = r[f]
            value = "-" if not cell or cell["value"] is None else fmt_rate(cell["value"])
            if cell and cell["range"]:
                value += f" [{fmt_range(fmt_rate(cell['range'][0]), fmt_rate(cell['range'][1]))}]"
            line += [value, _change(cell)]
        body.append(line)
    return render_table(header, body, markdown)


def plot_history(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """tokens/s per run in order, its range as whiskers; a triangle marks each change beyond noise (down: slower)."""
    from gpt2_lightning.report.plots import plt, save_with_footnote

    figures = [f for f in FIGURES if any(r[f] and r[f]["value"] for r in rows)] or list(FIGURES[:1])
    fig, axes = plt.subplots(len(figures), 1, figsize=(max(6.0, 0.9 * len(rows) + 2), 2.9 * len(figures)),
                             squeeze=False)
    for ax, figure in zip(axes[:, 0], figures):
        xs = [i for i, r in enumerate(rows) if r[figure] and r[figure]["value"]]
        ys = [rows[i][figure]["value"] for i in xs]
        low = [y - (rows[i][figure]["range"] or (y, y))[0] for i, y in zip(xs, ys)]
        high = [(rows[i][figure]["range"] or (y, y))[1] - y for i, y in zip(xs, ys)]
        ax.errorbar(xs, ys, yerr=[low, high], fmt="o-", capsize=3, elinewidth=0.8, color="#1f77b4")
        marked = [(i, y) for i, y in zip(xs, ys) if rows[i].get("marks")]
        if marked:  # a planted delay or different settings: not the code's trend
            ax.plot([i for i, _ in marked], [y for _, y in marked], "s", mfc="none", mec="#ff7f0e", markersize=13,
                    mew=1.5, label="(!) planted delay or other settings")
        for i, y in zip(xs, ys):
            cell = rows[i][figure]
            if cell["noise"] == BEYOND_NOISE:
                faster = cell["ratio"] > 1
                ax.plot([i], [y], "^" if faster else "v", color="#2ca02c" if faster else "#d62728", markersize=11,
                        label="faster, beyond noise" if faster else "slower, beyond noise")
                ax.annotate(fmt_speedup(cell["ratio"]), (i, y), xytext=(8, 0), textcoords="offset points",
                            fontsize=7, va="center")
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=7, frameon=False, loc="best")
        ax.set_xticks(range(len(rows)), tick_labels(rows), fontsize=7, rotation=30, ha="right")
        ax.set_ylabel(figure.replace(": ", "\n"), fontsize=8)
        ax.margins(x=0.08, y=0.25)
    fig.suptitle(title, fontsize=9)
    return save_with_footnote(fig, path, "whiskers: lowest-highest repeat (single runs: p10-p90 of the steps); "
                              "(!) orange square: a planted delay or settings that differ from the first run's\n"
                              "triangles: a change beyond noise against the run before")


def write_history(folder: Path, out: Path) -> tuple[str, list[Path]]:
    """history.md and history.png for the runs below ``folder``; the text to print. ValueError without runs."""
    runs, skipped = load_history(folder)
    if not runs:
        raise ValueError(f"{folder}: no results.json below it")
    rows = history_rows(runs)
    differ = settings_table([d for _, d in runs])[0]
    notes = ([f"WARNING: the runs differ in {', '.join(name for name, _ in differ)}: the trend mixes settings."]
             if mismatched(differ) else []) + skipped
    planted = [name for name, d in runs if planted_delay(d.get("config", {}))]
    if planted:
        notes.append(f"WARNING: {', '.join(planted)} ran with --add-delay-ms, a planted slowdown for checks: not the "
                     "code's figures.")
    title = f"{folder.name}: {len(runs)} runs in commit/time order"
    out.mkdir(parents=True, exist_ok=True)
    md, png = out / "history.md", out / "history.png"
    plot_history(rows, png, title)
    from gpt2_lightning.report.results import atomic_write_text

    text = "\n".join([*notes, format_history(rows)])
    atomic_write_text(md, f"# History: {folder}\n\n" + "\n".join(f"- {n}" for n in notes) + ("\n\n" if notes else "")
                      + format_history(rows, markdown=True) + f"\n\n![history]({png.name})\n")
    return text, [md, png]
