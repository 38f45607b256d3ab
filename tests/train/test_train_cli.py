"""train.py's flags and end-of-run lines: --threads as profile.py's, warm-up >= steps and empty --out / --run-name
refused in one line, the loss quoted as means over logged steps (not two single batches), loss.png's y-axis from 0 to
above every point, and the contention warning saying "pushed off their cores" only when the kernel counted it."""

import json
import subprocess
import sys
from unittest import mock

import pytest

from tests.conftest import ROOT

TOPICS = __import__("pydoc_data.topics").topics.__file__  # a real text that ships with Python


def _one_line_refusal(capsys, code, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "Traceback" not in err[0] and all(n in err[0] for n in needles), err


def test_warm_up_as_long_as_the_run_is_refused(tmp_path, capsys):
    from gpt2_lightning.train.cli import main

    code = main(["--data", str(tmp_path), "--model", "tiny", "--warmup-steps", "10", "--max-steps", "3", "--out",
                 str(tmp_path / "runs"), "--run-name", "r"])
    _one_line_refusal(capsys, code, "--warmup-steps 10", "below the 3 step(s)")
    assert not (tmp_path / "runs" / "r").exists()


@pytest.mark.parametrize("script", ["profile", "train"])
@pytest.mark.parametrize("flag", ["--out", "--run-name"])
def test_empty_out_and_run_name_are_refused(tmp_path, monkeypatch, capsys, script, flag):
    from gpt2_lightning.profile.cli import main as profile_main
    from gpt2_lightning.train.cli import main as train_main

    monkeypatch.chdir(tmp_path)  # "" was the current directory: nothing may land here
    args = ["--model", "tiny", "--accelerator", "cpu", flag, ""]
    code = profile_main(args) if script == "profile" else train_main(["--data", str(tmp_path / "none"), *args])
    _one_line_refusal(capsys, code, f"{flag} ''", "is empty")
    assert list(tmp_path.iterdir()) == []


def test_train_loss_line_quotes_means_over_the_last_logged_steps():
    from gpt2_lightning.train.cli import training_lines

    # one batch's loss jumps about: the last logged batch (2.19) is above the first of the tail (1.83)
    losses = [4.0, 3.0, 2.5, 2.2, 2.0, 1.83, 1.7, 1.6, 1.5, 2.19]
    train = {"train_loss": [{"step": 9 + 10 * i, "loss": x} for i, x in enumerate(losses + [x - 0.5 for x in losses])],
             "val_loss": [{"step": 0, "loss": 5.5}, {"step": 200, "loss": 1.6}]}
    line = training_lines(train).splitlines()[1]
    # hand-computed: (4.0 + 3.0 + 2.5 + 2.2 + 2.0 + 1.83 + 1.7 + 1.6 + 1.5 + 2.19) / 10 = 22.52 / 10, then 0.5 less
    assert line == ("train loss: mean of the first 10 logged steps (steps 9-99) 2.2520 -> of the last 10 "
                    "(steps 109-199) 1.7520")
    two = training_lines({"train_loss": [{"step": 9, "loss": 4.0}, {"step": 19, "loss": float("nan")},
                                         {"step": 29, "loss": 3.0}]}).splitlines()[1]
    assert two == ("train loss: 4.0000 at step 9 -> 3.0000 at step 29 (single batches: too few logged steps for a "
                   "mean); 1 logged step(s) not finite, left out")


def test_one_logged_step_is_said_once():
    from gpt2_lightning.report.training import loss_section
    from gpt2_lightning.train.cli import training_lines

    train = {"train_loss": [{"step": 9, "loss": 6.0557}]}
    assert training_lines(train).splitlines()[1] == "train loss: 6.0557 at step 9 (the only logged step)"
    rows = loss_section({"config": {"train": {}}, "experiments": {"train": train}}, {})
    assert "| train loss (step 9, the only logged step) | 6.0557 | - |" in rows


def test_an_interrupted_own_module_run_is_not_told_to_resume_with_what_train_py_refuses():
    from pathlib import Path
    from types import SimpleNamespace

    from gpt2_lightning.train.cli import interrupted_message

    train = {"global_step": 7, "last_checkpoint": "runs/t/checkpoints/last.ckpt", "last_checkpoint_step": 5}
    e = SimpleNamespace(results=SimpleNamespace(experiments={"train": train}))  # what RunInterrupted carries
    gpt2, own = interrupted_message(e, Path("runs/t")), interrupted_message(e, Path("runs/t"), resumable=False)
    assert gpt2.endswith("holds step 5: resume with --resume runs/t/checkpoints/last.ckpt")
    assert own.endswith("holds step 5: continue with Lightning's trainer.fit(..., ckpt_path=...) in your own code")


def test_loss_plot_y_axis_runs_from_0_to_above_every_point(tmp_path):
    from gpt2_lightning.report.training import plot_loss

    points = [{"step": s, "loss": x} for s, x in ((9, 9.0), (19, 2.0), (29, 1.9), (39, 2.1), (49, 1.8), (59, 1.7))]
    data = {"config": {"train": {}, "model": "tiny"}, "env": {},
            "experiments": {"train": {"train_loss": points, "val_loss": [{"step": 0, "loss": 5.5}]}}}
    figures = []
    with mock.patch("gpt2_lightning.report.plots.plt.close", side_effect=figures.append):
        plot_loss(data, tmp_path / "loss.png")
    ax = figures[0].axes[0]
    low, high = ax.get_ylim()
    assert low == 0 and high >= 9.0  # every point inside, heights from 0
    means = [list(line.get_ydata()) for line in ax.lines if line.get_label().startswith("_")]
    assert [pytest.approx((9.0 + 2.0 + 1.9) / 3)] * 2 in means  # the first 3 logged steps, drawn where taken


def test_contention_warning_says_pushed_off_only_when_switches_were_counted():
    from gpt2_lightning.report.noise import contention_lines
    from tests.report.test_judgement import BASE, single

    for switches in (0, 325):
        data = single(BASE, machine={"waiting_share": 0.47, "involuntary_switches": switches})
        data["env"]["torch_threads"] = 2
        data["experiments"]["train"]["load_avg"] = [4.1, 3.0, 2.0]
        threads, waited = contention_lines(data)
        said = "pushed off their cores (325 involuntary context switches)" in threads
        assert said == bool(switches) and ("pushed off" in threads) == bool(switches), threads
        assert ("(0 involuntary" not in waited) and ("325 involuntary" in waited) == bool(switches), waited


@pytest.mark.slow
def test_train_threads_sets_torchs_threads(tmp_path):
    data = tmp_path / "tokens"
    prep = subprocess.run([sys.executable, "scripts/prepare_data.py", TOPICS, "--tokenizer", "bytes", "--out",
                           str(data)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert prep.returncode == 0, prep.stderr
    proc = subprocess.run([sys.executable, "scripts/train.py", "--data", str(data), "--model", "tiny", "--batch-size",
                           "2", "--seq-len", "16", "--max-steps", "2", "--warmup-steps", "1", "--val-batches", "1",
                           "--lr-warmup-steps", "1", "--accelerator", "cpu", "--threads", "1", "--out", str(tmp_path),
                           "--run-name", "t"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "t" / "results.json").read_text())
    assert results["env"]["torch_threads"] == 1 and results["config"]["threads"] == 1
