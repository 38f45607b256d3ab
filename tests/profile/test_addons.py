"""An add-on that fails (energy window, memory snapshot, diagnosis), with any exception, costs the experiment nothing:
its block is {"error": ...}, the console has one line for it, and the measured figures stand."""

import json

import torch

import callbacks.energy
import gpt2_lightning.profile.energy as energy_run
from gpt2_lightning.profile import diagnosis as diagnosis_run
from gpt2_lightning.profile.memory import MemorySnapshotCallback
from gpt2_lightning.profile.settings import ProfileConfig
from gpt2_lightning.profile.run import run_profile
from tests.cuda_standins import MemoryHistory


class MeterThatBreaks:
    """A meter whose driver binding fails with an error nobody foresaw (not EnergyUnavailable)."""

    source, devices = "nvml", 1

    def read(self):
        raise TypeError("scripted: the binding returned None")

    def joules(self, start, end):
        raise AssertionError("never called")


def test_each_addon_that_raises_leaves_the_measured_figures_standing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(callbacks.energy, "meter_for", lambda device: MeterThatBreaks())
    monkeypatch.setattr(energy_run, "meter_for", lambda device: MeterThatBreaks())
    monkeypatch.setattr(energy_run, "_idle_cache", {})
    monkeypatch.setattr(MemorySnapshotCallback, "records", staticmethod(lambda trainer: True))
    # the diagnosis's GPU branch, whose extra steps fail with a Lightning-style ValueError
    monkeypatch.setattr(diagnosis_run, "resolve_device", lambda accelerator: torch.device("cuda", 0))

    def extra_steps_fail(cfg, module, stage, run_dir, experiment):
        raise ValueError("scripted: `Trainer.fit` got an unexpected module state")

    monkeypatch.setattr(diagnosis_run, "profile_extra_steps", extra_steps_fail)
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=1, seq_len=8, warmup_steps=1, steps=2,
                        experiments="inference,train", memory_snapshot=True)
    with MemoryHistory(dump_error=KeyError("scripted dump failure")).installed():
        results = run_profile(cfg, tmp_path)
    assert results.status == "complete"
    err = capsys.readouterr().err
    for exp, phase in (("inference", "forward"), ("train", "step")):
        r = results.experiments[exp]
        assert r["phases"][phase]["n"] == 2 and r["phases"][phase]["median_ms"] > 0
        assert r["throughput"]["tokens_per_sec"] > 0
        assert r["energy"] == {"error": "TypeError: scripted: the binding returned None"}
        assert r["memory_snapshot"] == {"error": "KeyError: 'scripted dump failure'"}
        assert r["diagnosis"] == {"error": "ValueError: scripted: `Trainer.fit` got an unexpected module state"}
        assert r["extra_steps"] == 0  # a failed energy window ran no extra step: the stage stopped when counted
        for what in ("energy measurement", "memory snapshot", "diagnosis"):
            assert err.count(f"profile.py: {exp}: {what} failed: ") == 1, err
    assert results.env["idle_power"] == {"error": "TypeError: scripted: the binding returned None"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["experiments"]["train"]["phases"]["step"]["n"] == 2
    report = (tmp_path / "report.md").read_text()
    assert "Allocation history: failed (KeyError" in report and "**Diagnosis failed:** ValueError" in report
    assert "Traceback" not in err
