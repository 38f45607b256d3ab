"""Ctrl-C in the middle of an experiment keeps the steps timed before it: summarised (STATS), marked interrupted, for
profile.py as for train.py; train.py says which step last.ckpt holds. The signal is a real SIGINT sent to this
process from inside a step, under the same handler the command lines install."""

import json
import os
import signal

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback

from gpt2_lightning.profile.interrupts import RunInterrupted, interruptible


class SigintAfter(Callback):
    """Sends SIGINT to this process at the end of training batch ``batch`` (after the timing callback's mark)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGINT)


def test_profile_keeps_the_steps_measured_before_ctrl_c(tmp_path, monkeypatch, capsys):
    from gpt2_lightning.profile import experiments
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.run import run_profile
    from gpt2_lightning.report.render import format_summary

    monkeypatch.setattr(experiments, "make_progress", lambda *a, **k: [SigintAfter(batch=5)])
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=1, seq_len=8, warmup_steps=1, steps=100000,
                        experiments="train", no_energy=True)
    with interruptible(), pytest.raises(RunInterrupted):
        run_profile(cfg, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["status"] == "incomplete" and data["interrupted_by"] == "SIGINT"
    train = data["experiments"]["train"]
    assert train["interrupted"] is True and "error" not in train
    # batches 0-5 ran: 1 warm-up step and 5 counted ones, each with its phases
    assert train["phases"]["step"]["n"] == 5 and train["phases"]["forward"]["n"] == 5
    assert train["phases"]["step"]["median_ms"] > 0 and len(train["per_step"]) == 6
    assert train["throughput"]["tokens_per_sec"] > 0
    line = "train: interrupted; its figures are over the 5 counted step(s) measured before the signal"
    assert line in format_summary(data)
    assert "**Interrupted:** its figures are over the 5" in (tmp_path / "report.md").read_text()


def _token_dir(path):
    path.mkdir()
    tokens = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint16)
    tokens[:3600].tofile(path / "train.bin")
    tokens[3600:].tofile(path / "val.bin")
    (path / "meta.json").write_text(json.dumps({"tokenizer": "bytes", "vocab_size": 256, "dtype": "uint16",
                                                "train_tokens": 3600, "val_tokens": 400}))
    return path


def test_train_py_keeps_its_steps_and_says_which_step_last_ckpt_holds(tmp_path, monkeypatch, capsys):
    from gpt2_lightning.train import run as training
    from gpt2_lightning.train.cli import main

    make_trainer = training.make_trainer

    def with_signal(cfg, callbacks, **kwargs):
        return make_trainer(cfg, [*callbacks, SigintAfter(batch=6)], **kwargs)

    monkeypatch.setattr(training, "make_trainer", with_signal)
    code = main(["--data", str(_token_dir(tmp_path / "data")), "--model", "tiny", "--n-layer", "1", "--seq-len", "8",
                 "--batch-size", "1", "--max-steps", "1000", "--checkpoint-every", "4", "--val-every", "1000",
                 "--val-batches", "1", "--accelerator", "cpu", "--out", str(tmp_path), "--run-name", "r"])
    assert code == 130
    err = capsys.readouterr().err.strip().splitlines()
    run = tmp_path / "r"
    last = run / "checkpoints" / "last.ckpt"
    assert err[-1] == (f"train.py: interrupted by SIGINT at step 7; {run / 'results.json'} holds the 5 timed step(s) "
                       f"before it (marked interrupted); {last} holds step 4: resume with --resume {last}")
    train = json.loads((run / "results.json").read_text())["experiments"]["train"]
    assert train["interrupted"] is True and train["phases"]["step"]["n"] == 5 and train["last_checkpoint_step"] == 4
    from gpt2_lightning.train.checkpoints import inspect_checkpoint

    assert inspect_checkpoint(last)["step"] == 4  # what the message says is what the file holds


def test_a_signal_inside_a_queue_waits_for_the_next_check_and_a_second_one_does_not():
    """A SIGTERM raised inside a queue's bookkeeping (TensorBoard's writer thread is fed through one) left the writer
    waiting for a message that never came: the run hung in the logger's close, its steps unsaved. Such a signal now
    waits for the next check (every batch); a second one, while it waits, is raised at once wherever it lands."""
    import queue

    from gpt2_lightning.profile.interrupts import check

    class SignalOnPut(queue.Queue):
        def _put(self, item):
            os.kill(os.getpid(), signal.SIGTERM)  # handled while Queue.put holds the queue's lock
            super()._put(item)

    q = SignalOnPut()
    with interruptible():
        q.put(1)  # no raise in there: the put completes
        assert q.get_nowait() == 1
        with pytest.raises(RunInterrupted) as raised:
            check()
        assert raised.value.exit_code == 128 + signal.SIGTERM
        with pytest.raises(RunInterrupted):
            q.put(2)  # a second signal while the first waits: at once
