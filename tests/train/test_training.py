"""Real tokens, training that learns, exact resume, and clear errors for bad data."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT

TOPICS = __import__("pydoc_data.topics").topics.__file__  # a real text that ships with Python


def run(script, *args):
    return subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "topics"
    proc = run("prepare_data.py", TOPICS, "--tokenizer", "bytes", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_prepare_data_bytes(data_dir):
    meta = json.loads((data_dir / "meta.json").read_text())
    assert meta["tokenizer"] == "bytes" and meta["vocab_size"] == 256 and meta["dtype"] == "uint16"
    train = np.fromfile(data_dir / "train.bin", dtype=np.uint16)
    val = np.fromfile(data_dir / "val.bin", dtype=np.uint16)
    assert len(train) == meta["train_tokens"] and len(val) == meta["val_tokens"]
    text = open(TOPICS, encoding="utf-8").read().encode("utf-8")
    assert len(train) + len(val) == len(text)
    assert bytes(train[:200].astype(np.uint8)) == text[:200]
    assert 0.08 < len(val) / len(text) < 0.12


def test_gpt2_tokenizer_without_tiktoken_gives_the_readmes_advice(monkeypatch, capsys, tmp_path):
    """One advice, the README's: the project's data extra."""
    monkeypatch.syspath_prepend(str(Path(ROOT) / "scripts"))
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # not installed: the import fails
    import prepare_data

    # the whole command, not only encode(): its main once printed the exit code "2" as a second line
    assert prepare_data.main([TOPICS, "--tokenizer", "gpt2", "--out", str(tmp_path / "tok")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert 'pip install -e ".[data]"' in err and 'pip install -e ".[data]"' in (Path(ROOT) / "README.md").read_text()


def test_prepare_data_refuses_to_overwrite(data_dir):
    proc = run("prepare_data.py", TOPICS, "--out", data_dir)
    assert proc.returncode == 2 and "already holds" in proc.stderr and "Traceback" not in proc.stderr


def test_windows_are_seeded_and_deal_out_by_rank(data_dir):
    from gpt2_lightning.data import TokenFileDataModule

    def first(start=0, seed=1, rank=0, world=1):
        dm = TokenFileDataModule(data_dir, seq_len=16, batch_size=2, seed=seed)
        dm._start = start
        from gpt2_lightning.data import _TrainWindows

        it = iter(_TrainWindows(dm.data_dir, dm.meta, 16, 2, seed, start, rank, world))
        return [next(it) for _ in range(3)]

    a, b = first(), first()
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    x, y = a[0]
    assert x.shape == y.shape == (2, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(first(start=1)[0][0], a[1][0])  # the stream resumes exactly where it was
    assert torch.equal(first(rank=1, world=2)[0][0], a[1][0])  # rank 1 of 2 takes every other batch
    assert not torch.equal(first(seed=2)[0][0], a[0][0])


TRAIN = ["--model", "tiny", "--batch-size", "8", "--seq-len", "64", "--lr", "2e-3", "--lr-warmup-steps", "10",
         "--accelerator", "cpu"]


@pytest.mark.slow
def test_training_on_real_text_lowers_validation_loss(data_dir, tmp_path):
    proc = run("train.py", "--data", data_dir, *TRAIN, "--max-steps", "200", "--val-every", "100",
               "--checkpoint-every", "100", "--out", tmp_path, "--run-name", "t")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "t" / "results.json").read_text())
    train = data["experiments"]["train"]
    val = train["val_loss"]
    assert [v["step"] for v in val] == [0, 100, 200]
    assert val[-1]["loss"] < val[0]["loss"] - 1.0, val  # clearly below its start
    assert val[-1]["perplexity"] == pytest.approx(np.exp(val[-1]["loss"]), rel=1e-4)
    assert train["global_step"] == 200 and train["phases"]["step"]["n"] == 198
    assert [v["step"] for v in train["train_loss"]][:2] == [9, 19] and train["train_loss"][-1]["step"] == 199
    assert train["fit"]["steps_pct"] > 50 and train["fit"]["validation_ms"] > 0 and train["fit"]["checkpoint_ms"] > 0
    assert train["phases"]["checkpoint"]["n"] == 2 and train["phases"]["validation"]["n"] == 2
    assert "train loss:" in proc.stdout and "validation loss:" in proc.stdout and "fit " in proc.stdout
    ckpts = sorted(p.name for p in (tmp_path / "t" / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step100.ckpt", "step200.ckpt"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gpt2_lightning.report.tensorboard_logs import tensorboard_dir

    acc = EventAccumulator(str(tensorboard_dir(tmp_path / "t", "train")))
    acc.Reload()
    assert {"val/loss", "val/perplexity", "train/loss", "time/step_ms", "train/lr/decay", "train/lr/no_decay"} <= set(
        acc.Tags()["scalars"])
    assert "epoch" not in acc.Tags()["scalars"]  # Lightning adds it to every self.log(); a flat line at 0


def _train_main(*args):
    from gpt2_lightning.train.cli import main

    return main([str(a) for a in args])


def test_resume_continues_like_an_uninterrupted_run(data_dir, tmp_path):
    common = ["--data", data_dir, *TRAIN, "--lr-warmup-steps", "3", "--lr-decay-steps", "16", "--val-every", "4",
              "--checkpoint-every", "8", "--log-every", "1", "--out", tmp_path]
    assert _train_main(*common, "--max-steps", "16", "--run-name", "whole") == 0
    assert _train_main(*common, "--max-steps", "8", "--run-name", "first") == 0
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert _train_main(*common, "--max-steps", "16", "--run-name", "second", "--resume", ckpt) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["experiments"]["train"]
    second = json.loads((tmp_path / "second" / "results.json").read_text())["experiments"]["train"]
    assert whole["global_step"] == second["global_step"] == 16
    assert [x["step"] for x in second["train_loss"]] == list(range(8, 16))
    assert [x["loss"] for x in second["train_loss"]] == pytest.approx([x["loss"] for x in whole["train_loss"][8:]],
                                                                      rel=1e-6)
    # validations at steps 12 and 16
    assert [v["step"] for v in second["val_loss"]] == [v["step"] for v in whole["val_loss"][-2:]] == [12, 16]
    assert [v["loss"] for v in second["val_loss"]] == pytest.approx([v["loss"] for v in whole["val_loss"][-2:]])
    # the step axis continues: the resumed run's steps are 8..15, and it says where it started
    assert second["resumed_from"]["step"] == 8
    assert [s["step"] for s in second["per_step"]] == list(range(8, 16))
    assert second["phases"]["step"]["n"] == 8 - 2  # two warm-up steps after the resume
    data = json.loads((tmp_path / "second" / "results.json").read_text())
    assert data["config"]["steps"] == second["phases"]["step"]["n"]  # the header's "timed steps" is the real count
    # TensorBoard: one global-step axis, the steps results.json and the console give (continuing after the resume)
    for run, part in (("whole", whole), ("second", second)):
        steps = _scalar_steps(tmp_path / run)
        assert steps["val/loss"] == steps["val/perplexity"] == [v["step"] for v in part["val_loss"]]
        assert steps["time/validation_ms"] == [v["step"] for v in part["val_loss"] if v["step"]]  # inside fit
        assert steps["time/checkpoint_ms"] == [8, 16] if run == "whole" else [16]  # as step8.ckpt, step16.ckpt
        assert not [t for t in steps if t.startswith(("time/val_", "throughput/val_"))]  # no validation-batch axis
    assert _scalar_steps(tmp_path / "whole")["val/loss"] == [0, 4, 8, 12, 16]


def _scalar_steps(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gpt2_lightning.report.tensorboard_logs import tensorboard_dir

    acc = EventAccumulator(str(tensorboard_dir(run_dir, "train")), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_resume_refusals_are_one_line_and_leave_no_run_directory(data_dir, tmp_path, capsys):
    common = ["--data", data_dir, *TRAIN, "--val-every", "4", "--checkpoint-every", "4", "--out", tmp_path]
    assert _train_main(*common, "--max-steps", "4", "--lr-decay-steps", "8", "--run-name", "first") == 0
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    cases = [
        (["--resume", not_a_checkpoint, "--max-steps", "8"], "not a Lightning checkpoint"),
        (["--resume", ckpt, "--max-steps", "8", "--lr-decay-steps", "16"], "--lr-decay-steps 8"),
        (["--resume", ckpt, "--max-steps", "4"], "already at step 4"),
        (["--resume", ckpt, "--max-steps", "8", "--n-layer", "3"], "n_layer 4 (asked: 3)"),
    ]
    for extra, needle in cases:
        capsys.readouterr()
        assert _train_main(*common, *extra, "--run-name", "again") == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (extra, err)
        assert not (tmp_path / "again").exists()
    # unset, --lr-decay-steps is the checkpoint's; a change is taken only when asked for
    # two steps left: warm-up 1, so that one is timed (warm-up 2 would leave none, refused)
    assert _train_main(*common, "--resume", ckpt, "--max-steps", "6", "--warmup-steps", "1", "--run-name",
                       "inherits") == 0
    assert "resumed from step 4" in capsys.readouterr().err
    cfg = json.loads((tmp_path / "inherits" / "results.json").read_text())["config"]["train"]
    assert cfg["lr_decay_steps"] == 8
    assert _train_main(*common, "--resume", ckpt, "--max-steps", "6", "--lr-decay-steps", "16", "--warmup-steps", "1",
                       "--allow-schedule-change", "--run-name", "changed") == 0


def test_a_failed_start_leaves_no_run_directory(data_dir, tmp_path, monkeypatch):
    import gpt2_lightning.train.run

    def broken(*args, **kwargs):
        raise RuntimeError("the accelerator fell over before the first step")

    monkeypatch.setattr(gpt2_lightning.train.run, "train", broken)
    with pytest.raises(RuntimeError):
        _train_main("--data", data_dir, *TRAIN, "--max-steps", "4", "--out", tmp_path, "--run-name", "r")
    assert not (tmp_path / "r").exists()


def _bad_dir(tmp_path, tokens, vocab=256, dtype="uint16"):
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    np.asarray(tokens, dtype=dtype).tofile(d / "train.bin")
    np.asarray(tokens, dtype=dtype).tofile(d / "val.bin")
    (d / "meta.json").write_text(json.dumps({"tokenizer": "bytes", "vocab_size": vocab, "dtype": dtype}))
    return d


@pytest.mark.parametrize("script", ["train.py", "profile.py"])
@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing-dir", "no such data directory"),
        ("missing-file", "val.bin: missing"),
        ("token-too-large", "token id 300 is not below the vocabulary size 256"),
        ("too-short", "shorter than one window"),
    ],
)
def test_bad_data_is_one_line_exit_2(tmp_path, script, case, needle):
    if case == "missing-dir":
        d = tmp_path / "nowhere"
    elif case == "missing-file":
        d = _bad_dir(tmp_path, list(range(200)))
        (d / "val.bin").unlink()
    elif case == "token-too-large":
        d = _bad_dir(tmp_path, [1] * 100 + [300] + [2] * 100)
    else:
        d = _bad_dir(tmp_path, list(range(20)))
    args = ["--data", d, "--model", "tiny", "--seq-len", "32", "--accelerator", "cpu", "--out", tmp_path / "runs"]
    proc = run(script, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and needle in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


def test_profile_with_real_tokens(data_dir, tmp_path):
    proc = run("profile.py", "--data", data_dir, "--accelerator", "cpu", "--model", "tiny", "--batch-size", "2",
               "--seq-len", "32", "--steps", "2", "--experiments", "inference,train", "--out", tmp_path,
               "--run-name", "r")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["config"]["gpt"]["vocab_size"] == 256  # from the data's meta.json
    assert data["config"]["data"] == str(data_dir)
    assert data["experiments"]["train"]["phases"]["step"]["n"] == 2
    assert data["experiments"]["inference"]["phases"]["forward"]["n"] == 2
