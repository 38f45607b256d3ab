"""scripts/noise_check.py's judging of reruns it already made (--rejudge): no profile.py process runs here."""

import contextlib
import importlib.util
import io
import json
import sys
import types
from pathlib import Path

from tests.report.test_judgement import repeated

ROOT = Path(__file__).resolve().parents[2]


def noise_check():
    """scripts/noise_check.py as a module (its _bootstrap stood in: the tests already run from the repository root)."""
    sys.modules.setdefault("_bootstrap", types.ModuleType("_bootstrap"))
    spec = importlib.util.spec_from_file_location("noise_check", ROOT / "scripts" / "noise_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(out: Path, name: str, medians: list[float], processes: int, delay_ms: float | None = None) -> None:
    data = repeated(medians)
    data["experiments"]["train"]["world_size"] = processes
    data["config"]["add_delay_ms"] = delay_ms
    data.setdefault("schema_version", 1)
    (out / "runs" / name).mkdir(parents=True)
    (out / "runs" / name / "results.json").write_text(json.dumps(data), encoding="utf-8")


def test_rejudged_runs_of_two_processes_are_found_by_key_not_by_their_rank_0_label(tmp_path):
    """With several processes compare's labels read "train: tokens/s (rank 0)"; a lookup by that label found no row,
    so identical pairs read "not judged" and a planted slowdown's pair raised KeyError."""
    base = [100.0, 103.0, 98.0, 101.0, 99.5]
    write_run(tmp_path, "same-1-a", base, 2)
    write_run(tmp_path, "same-1-b", [m * 1.01 for m in reversed(base)], 2)
    write_run(tmp_path, "slow50-1-a", base, 2)
    write_run(tmp_path, "slow50-1-b", [m * 1.5 for m in base], 2, delay_ms=50.0)
    nc = noise_check()
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert nc.main(["--out", str(tmp_path), "--rejudge"]) == 0
    report = json.loads((tmp_path / "noise_check.json").read_text(encoding="utf-8"))
    same = report["identical"][0]["verdicts"]
    assert same["train: tokens/s"][2] == "within noise"  # judged, and identical settings within noise
    pair = report["planted"]["50"]["pairs"][0]
    assert pair["verdict"] == "beyond noise" and abs(pair["ratio"] - 1 / 1.5) < 1e-6  # the planted 1.5x step
    assert report["planted"]["50"]["told_apart"] == 1
    assert "called slower beyond noise in 1 of 1" in printed.getvalue()
