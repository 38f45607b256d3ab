"""Precisions, torch.compile, --init-on, sweeps and several processes, on the CPU."""

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT

BASE = ["--accelerator", "cpu", "--model", "tiny", "--batch-size", "2", "--seq-len", "32", "--steps", "2"]


def _run(tmp_path, name="r", **kw):
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.run import run_profile

    args = dict(accelerator="cpu", model="tiny", batch_size=2, seq_len=32, steps=2, warmup_steps=1,
                experiments="train", out=str(tmp_path), run_name=name)
    args.update(kw)
    run_dir = tmp_path / name
    run_dir.mkdir()
    run_profile(ProfileConfig(**args), run_dir)
    return json.loads((run_dir / "results.json").read_text())


# 16-mixed is refused on a CPU (Lightning would run bf16-mixed under the 16-mixed label): test_reliability.py
@pytest.mark.parametrize("precision", ["32-true", "tf32", "bf16-mixed", "bf16-true", "64-true"])
def test_precisions_on_cpu(tmp_path, precision):
    data = _run(tmp_path, precision=precision)
    train = data["experiments"]["train"]
    assert data["status"] == "complete" and data["config"]["precision"] == precision
    assert train["phases"]["step"]["n"] == 2 and train["throughput"]["tokens_per_sec"] > 0
    assert train["throughput"]["mfu_pct"] is None  # no CPU peak in the table, whatever the precision
    expected = "high" if precision == "tf32" else "highest"
    assert data["env"]["float32_matmul_precision"] == expected


def test_bf16_true_builds_bf16_weights(tmp_path):
    import lightning as L

    from gpt2_lightning.profile.trainers import make_module

    from gpt2_lightning.profile.settings import ProfileConfig

    cfg = ProfileConfig(accelerator="cpu", model="tiny", precision="bf16-true")
    module = make_module(cfg)
    trainer = L.Trainer(accelerator="cpu", precision="bf16-true", max_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with trainer.init_module():
        module.configure_model()
    assert next(module.model.parameters()).dtype == torch.bfloat16


def test_compile_reports_first_step_apart(tmp_path):
    data = _run(tmp_path, compile=True, steps=2, warmup_steps=1)
    train = data["experiments"]["train"]
    assert train["phases"]["step"]["n"] == 2
    # compilation lands in the uncounted first step, which is far slower than a steady one (the faster of the two
    # counted steps: on a loaded machine one of them alone can be slowed several-fold)
    assert train["first_step_ms"] > 10 * train["phases"]["step"]["min_ms"]
    assert train["first_step_overhead_ms"] > 0


def test_compile_needs_a_warmup_step():
    from gpt2_lightning.profile.settings import ConfigError, ProfileConfig

    with pytest.raises(ConfigError, match="--warmup-steps 0"):
        ProfileConfig(compile=True, warmup_steps=0)


def test_init_on_cpu_then_move(tmp_path):
    data = _run(tmp_path, experiments="init", init_on="cpu")
    assert data["config"]["init_on"] == "cpu"
    assert data["experiments"]["init"]["phases"]["init_model"]["n"] == 2


def test_init_on_cpu_lands_on_the_target_device():
    from gpt2_lightning import GPT2LightningModule, GPTConfig

    module = GPT2LightningModule(GPTConfig.from_name("tiny"), init_on="cpu")
    with torch.device("meta"):  # stands in for the accelerator: the model must end up there
        module.configure_model()
    assert all(p.device.type == "meta" for p in module.model.parameters())


def test_sweep_bad_value_fails_before_any_work(tmp_path):
    cmd = [sys.executable, "scripts/profile.py", *BASE, "--out", str(tmp_path), "--sweep", "model=tiny,gpt9"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "gpt9" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    # the ddp strategy re-launches this command for rank 1: it must run as a script, so a subprocess here
    cmd = [sys.executable, "scripts/profile.py", *BASE, "--devices", "2", "--strategy", "ddp",
           "--experiments", "inference,train", "--out", str(tmp_path), "--run-name", "ddp"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # rank 1 wrote into rank 0's directory, nowhere else
    data = json.loads((tmp_path / "ddp" / "results.json").read_text())
    for exp, phase in (("train", "step"), ("inference", "forward")):
        result = data["experiments"][exp]
        assert result["world_size"] == 2
        assert [r["rank"] for r in result["ranks"]] == [0, 1]
        for r in result["ranks"]:
            assert r["phases"][phase]["n"] == 2 and r["phases"][phase]["median_ms"] > 0
        # the job's tokens over its slowest rank's median step (it ends when that rank ends)
        slowest = max(r["phases"][phase]["median_ms"] for r in result["ranks"])
        assert result["global_tokens_per_sec"] == pytest.approx(2 * 32 * 2 / (slowest / 1000), rel=1e-6)
    assert proc.stdout.count("results:") == 1  # one console summary, from rank 0
    assert "world size 2" in proc.stdout
