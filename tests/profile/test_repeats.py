"""--repeat N: each repeat a fresh process, summarised as one run; which code was measured; a planted delay."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.report.test_judgement import single


def test_merge_takes_the_median_of_the_repeats_medians_and_keeps_every_repeat():
    from gpt2_lightning.report.repeat_summary import merge_repeats

    medians = [12.0, 30.0, 10.0, 11.0, 13.0]  # one disturbed repeat
    repeats = [single([m - 1, m, m + 1, m + 2, m - 2]) for m in medians]
    for r, rss in zip(repeats, (0.40, 0.41, 0.45, 0.42, 0.40)):
        r["experiments"]["train"]["memory"] = {"max_rss_gib": rss}
    data = merge_repeats(repeats, Path("/runs/r"), 5)
    train = data["experiments"]["train"]
    step = train["phases"]["step"]
    assert (step["n"], step["median_ms"], step["min_ms"], step["max_ms"]) == (5, 12.0, 10.0, 30.0)
    assert train["repeats"] == {"n": 5, "medians_ms": medians, "numbers": [1, 2, 3, 4, 5], "representative": 1,
                                "waiting_shares": [None] * 5}
    assert train["throughput"]["tokens_per_sec"] == pytest.approx(128 / 0.012)  # over the run's median step
    assert train["memory"] == {"max_rss_gib": 0.45}  # the highest peak of any repeat
    assert "per_step" not in train
    assert [r["index"] for r in data["repeats"]] == [1, 2, 3, 4, 5]
    assert data["repeats"][1]["experiments"]["train"]["phases"]["step"]["median_ms"] == 30.0
    assert data["status"] == "complete" and data["config"]["run_dir"] == "/runs/r"
    assert merge_repeats(repeats[:3] + [None], Path("/runs/r"), 5)["status"] == "incomplete"


def test_git_state_records_the_commit_and_uncommitted_changes(tmp_path):
    from gpt2_lightning.profile.machine import git_state

    assert git_state(str(tmp_path)) is None  # not a repository
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "model.py").write_text("x = 1\n")
    run("add", "model.py")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    state = git_state(str(tmp_path))
    assert state["commit"] == head and state["dirty"] is False and state["commit_time"]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "results.json").write_text("{}")  # run outputs are not changes to the code
    assert git_state(str(tmp_path))["dirty"] is False
    (tmp_path / "model.py").write_text("x = 2\n")
    assert git_state(str(tmp_path))["dirty"] is True


def test_a_planted_delay_lands_inside_the_forward_pass(tmp_path):
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.run import run_profile

    threads = torch.get_num_threads()
    try:
        cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=1, seq_len=16, steps=3, warmup_steps=1,
                            experiments="train", out=str(tmp_path), run_name="d", add_delay_ms=40.0, threads=1,
                            no_energy=True)
        (tmp_path / "d").mkdir()
        data = run_profile(cfg, tmp_path / "d").to_dict()
    finally:
        torch.set_num_threads(threads)
    train = data["experiments"]["train"]
    assert data["env"]["torch_threads"] == 1
    assert train["planted_delay"]["calls"] == 4 and train["planted_delay"]["median_slept_ms"] >= 40.0
    assert train["phases"]["forward"]["min_ms"] >= 40.0  # every counted forward holds the sleep
    assert train["phases"]["step"]["min_ms"] >= 40.0
    assert train["machine"]["wall_s"] > 0.16 and "waiting_share" in train["machine"]


def test_bad_repeat_threads_and_delay_are_refused():
    from gpt2_lightning.profile.settings import ConfigError, ProfileConfig

    for kwargs, flag in (({"repeat": 0}, "--repeat 0"), ({"threads": 0}, "--threads 0"),
                         ({"add_delay_ms": -1.0}, "--add-delay-ms -1:")):
        with pytest.raises(ConfigError, match=flag):
            ProfileConfig(**kwargs)


def test_sweep_points_and_repeats_run_in_fresh_processes_taking_turns(tmp_path):
    """The issue's sweep, batch 4 before 1: every point and repeat is its own process (so each memory peak is its
    own), the points take turns (4 1 4 1), each point's results.json summarises its repeats, and the sweep lists
    the points in value order."""
    cmd = [sys.executable, "scripts/profile.py", "--accelerator", "cpu", "--model", "tiny", "--seq-len", "16",
           "--steps", "2", "--warmup-steps", "1", "--experiments", "train", "--no-energy", "--out", str(tmp_path),
           "--run-name", "sw", "--sweep", "batch_size=4,1", "--repeat", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    parent = tmp_path / "sw"
    children = {(b, r): json.loads((parent / f"batch_size-{b}" / f"repeat-{r}" / "results.json").read_text())
                for b in (4, 1) for r in (1, 2)}
    assert len({c["env"]["pid"] for c in children.values()}) == 4
    order = sorted(children, key=lambda k: children[k]["created"] + str(k[1]))
    assert [b for b, _ in order] == [4, 1, 4, 1] and [r for _, r in order] == [1, 1, 2, 2]
    for b in (4, 1):
        point = json.loads((parent / f"batch_size-{b}" / "results.json").read_text())
        medians = [children[(b, r)]["experiments"]["train"]["phases"]["step"]["median_ms"] for r in (1, 2)]
        step = point["experiments"]["train"]["phases"]["step"]
        assert step["median_ms"] == pytest.approx(sum(medians) / 2) and step["n"] == 2
        assert [r["index"] for r in point["repeats"]] == [1, 2]
        assert point["env"]["git"]["commit"]  # the tests run inside this repository
    sweep = json.loads((parent / "sweep.json").read_text())
    assert sweep["key"] == "batch_size" and [r["batch_size"] for r in sweep["rows"]] == [1, 4]
    for row in sweep["rows"]:
        point = json.loads((parent / f"batch_size-{row['batch_size']}" / "results.json").read_text())
        assert row["train tokens/s"] == point["experiments"]["train"]["throughput"]["tokens_per_sec"]
        assert row["train step ms"] == point["experiments"]["train"]["phases"]["step"]["median_ms"]
    assert (parent / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "| batch_size |" in (parent / "sweep.md").read_text() and "train tokens/s" in proc.stdout
    assert "2 repeats, each a fresh process" in (parent / "batch_size-1" / "report.md").read_text()
    assert proc.stdout.count("results:") == 2 and "repeat 2/2" in proc.stderr
