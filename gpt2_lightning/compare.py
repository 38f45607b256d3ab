"""Side-by-side comparison of two or more runs: a console table, comparison.md and comparison.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpt2_lightning.costs import projection_line
from gpt2_lightning.plots import plot_comparison
from gpt2_lightning.report import format_comparison
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
    labels = [run_label(r, Path(p).parent.name if p.endswith(".json") else Path(p).name) for r, p in zip(runs, paths)]
    # two runs of the same name and device would be indistinguishable: number them
    return [f"{i + 1}. {label}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def write_comparison(runs: list[dict[str, Any]], labels: list[str], out_dir: Path) -> tuple[str, list[Path]]:
    """Print-ready table; writes comparison.md and comparison.png into out_dir (created if missing)."""
    rows = compare(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "comparison.md"
    png = out_dir / "comparison.png"
    headline_rows = [r for r in rows if not r["label"].startswith(" ") and r["unit"] == "ms"]
    plot_comparison(labels, headline_rows, png)
    # each run's time to train its token budget, by run directory name ("cpu 127 days, gpu 9.1 h")
    projection = projection_line([Path(r.get("config", {}).get("run_dir") or label).name
                                  for r, label in zip(runs, labels)], runs)
    extra = f"\n\n{projection}" if projection else ""
    atomic_write_text(md, "# Comparison\n\n" + format_comparison(labels, rows, markdown=True) + extra
                      + f"\n\n![comparison]({png.name})\n")
    return format_comparison(labels, rows) + extra, [md, png]
