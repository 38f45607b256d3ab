"""Bad input gets one clear line and exit code 2; interruptions and out-of-memory lose nothing measured."""

import json
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest
import torch

from tests.conftest import ROOT

BASE = ["--accelerator", "cpu", "--model", "tiny", "--batch-size", "2", "--seq-len", "32", "--steps", "2"]


def run_cli(*args, out=None):
    cmd = [sys.executable, "scripts/profile.py", *args]
    if out is not None:
        cmd += ["--out", str(out)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--model", "gpt5"], ["--model gpt5", "gpt2-xl"]),
        (["--batch-size", "0"], ["--batch-size 0", "positive"]),
        (["--batch-size", "-3"], ["--batch-size -3", "positive"]),
        (["--steps", "0"], ["--steps 0", "positive"]),
        (["--seq-len", "0"], ["--seq-len 0", "positive"]),
        (["--seq-len", "2048"], ["--seq-len 2048", "block_size (1024)"]),
        (["--n-embd", "100", "--n-head", "3"], ["--n-embd 100", "--n-head (3)"]),
        (["--precision", "fp4"], ["--precision fp4", "bf16-mixed"]),
        (["--profiler", "nsight"], ["--profiler nsight", "pytorch"]),
        (["--accelerator", "tpu"], ["--accelerator tpu", "cpu"]),
        (["--accelerator", "gpu"], ["--accelerator gpu", "no CUDA GPU"]),
        (["--devices", "999"], ["--devices 999", "core"]),
        (["--devices", "two"], ["--devices two", "count"]),
        (["--experiments", "init,warmup"], ["--experiments init,warmup", "inference"]),
        (["--strategy", "foo"], ["--strategy foo", "ddp_spawn", "_find_unused_parameters_true", "fsdp"]),
        (["--strategy", "xla"], ["--strategy xla", "TPU"]),
        (["--devices", "0,1,2"], ["--devices 0,1,2", "on a CPU give a count"]),
        (["--strategy", "fsdp"], ["--strategy fsdp", "CUDA GPUs only", "--accelerator gpu"]),
        (["--accelerator", "cpu,gpu", "--strategy", "fsdp"], ["--strategy fsdp", "(not cpu)"]),
        (["--strategy", "deepspeed_stage_2"], ["--strategy deepspeed_stage_2", "CUDA GPUs only"]),
        (["--precision", "16-mixed"], ["--precision 16-mixed", "runs it as bf16-mixed", "--precision bf16-mixed"]),
        (["--accelerator", "cpu,gpu", "--precision", "16-mixed"], ["--precision 16-mixed", "bf16-mixed"]),
        (["--sweep", "precision=32-true,16-mixed"], ["--sweep precision=32-true,16-mixed", "runs it as bf16-mixed"]),
        (["--accelerator", "auto", "--devices", "0,1"], ["--devices 0,1", "--accelerator auto", "a count"]),
        (["--accelerator", "auto", "--precision", "16-mixed"], ["--precision 16-mixed", "--accelerator auto"]),
        (["--batch-size", "eight"], ["--batch-size", "invalid int"]),
        (["--no-such-flag"], ["unrecognized arguments"]),
    ],
)
def test_bad_flag_is_one_line_exit_2(tmp_path, args, needles):
    if "--accelerator" in args and {"gpu", "auto"} & set(args) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    # the bad flag comes last so it overrides BASE's value
    proc = run_cli(*BASE, *args, out=tmp_path)
    assert_one_line_error(proc, *needles)
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


def test_strategy_names_match_lightnings_registry():
    """settings.py writes Lightning's strategy names out (a refusal must not import Lightning): they may not drift."""
    from lightning.pytorch.strategies import StrategyRegistry

    from gpt2_lightning.profile.settings import GPU_ONLY_STRATEGIES, STRATEGIES, TPU_STRATEGIES

    assert sorted({*STRATEGIES, *TPU_STRATEGIES} - {"auto"}) == sorted(StrategyRegistry.available_strategies())
    assert set(GPU_ONLY_STRATEGIES) == {s for s in StrategyRegistry.available_strategies()
                                        if s.startswith(("fsdp", "deepspeed"))}


@pytest.mark.parametrize("args, needle", [
    (["--strategy", "foo"], "--strategy foo: valid: auto, ddp,"),
    (["--devices", "0,1"], "--devices 0,1: on a CPU give a count"),
    (["--strategy", "fsdp"], "--strategy fsdp: Lightning runs it on CUDA GPUs only"),
    (["--precision", "16-mixed"], "--precision 16-mixed: on a CPU Lightning runs it as bf16-mixed"),
])
def test_train_py_refuses_the_same_cpu_settings(tmp_path, args, needle):
    cmd = [sys.executable, "scripts/train.py", "--data", str(tmp_path / "none"), "--accelerator", "cpu", *args,
           "--out", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "runs").exists()


def test_upper_case_strategy_names_pass_as_in_lightning():
    from gpt2_lightning.profile.settings import ProfileConfig

    assert ProfileConfig(accelerator="cpu", strategy="DDP_Spawn").strategy == "DDP_Spawn"


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli(*BASE, out=blocker / "runs")
    assert_one_line_error(proc, "--out", "cannot create")


def test_existing_run_dir_is_never_overwritten(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text("precious")
    proc = run_cli(*BASE, "--run-name", "r", "--experiments", "init", out=tmp_path)
    assert_one_line_error(proc, "--run-name r", "--if-exists rename")
    assert (tmp_path / "r" / "results.json").read_text() == "precious"
    proc = run_cli(*BASE, "--run-name", "r", "--experiments", "init", "--if-exists", "rename", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "results.json").read_text() == "precious"
    assert json.loads((tmp_path / "r-1" / "results.json").read_text())["status"] == "complete"


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupt_keeps_a_valid_incomplete_results_file(tmp_path, sig, code):
    cmd = [sys.executable, "scripts/profile.py", *BASE[:-2], "--steps", "100000", "--experiments", "init,train",
           "--warmup-steps", "0", "--out", str(tmp_path), "--run-name", "r"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "r" / "results.json"
    deadline = time.time() + 120
    while not results.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # well inside the init experiment's builds
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    data = json.loads(results.read_text())
    assert data["status"] == "incomplete"
    assert data["interrupted_by"] == sig.name
    assert data["experiments"]["init"]["interrupted"] is True
    assert (tmp_path / "r" / "report.md").exists()


def _cfg(tmp_path, **kw):
    from gpt2_lightning.profile.settings import ProfileConfig

    args = dict(accelerator="cpu", model="tiny", batch_size=2, seq_len=32, steps=2, warmup_steps=1,
                out=str(tmp_path))
    args.update(kw)
    return ProfileConfig(**args)


def test_out_of_memory_in_one_experiment_spares_the_others(tmp_path, capsys):
    from gpt2_lightning.profile import experiments
    from gpt2_lightning.profile import run as profile_run

    def oom(cfg, run_dir):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    with mock.patch.dict(experiments.EXPERIMENT_RUNNERS, {"inference": oom}):
        results = profile_run.run_profile(_cfg(tmp_path), run_dir)
    data = json.loads((run_dir / "results.json").read_text())
    assert data["status"] == "failed"
    assert data["experiments"]["inference"]["error_type"] == "out_of_memory"
    message = data["experiments"]["inference"]["error"]
    assert "--batch-size 2" in message and "--seq-len 32" in message and "bf16" in message
    assert data["experiments"]["init"]["phases"]["init"]["n"] == 2
    assert data["experiments"]["train"]["phases"]["step"]["n"] == 2
    assert results.status == "failed"
    assert "out of memory" in capsys.readouterr().err
    assert "Failed:" in (run_dir / "report.md").read_text()


def test_out_of_memory_exit_code_and_console(tmp_path):
    from gpt2_lightning.profile import cli
    from gpt2_lightning.profile import experiments

    def oom(cfg, run_dir):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99999999999 bytes")

    with mock.patch.dict(experiments.EXPERIMENT_RUNNERS, {"train": oom}):
        code = cli.main([*BASE, "--out", str(tmp_path), "--run-name", "r", "--experiments", "init,train"])
    assert code == 1
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["experiments"]["init"]["phases"]["init"]["n"] == 2 and "error" in data["experiments"]["train"]


def test_other_errors_are_not_mistaken_for_oom(tmp_path):
    from gpt2_lightning.profile import experiments
    from gpt2_lightning.profile import run as profile_run

    def broken(cfg, run_dir):
        raise ValueError("a bug")

    (tmp_path / "r").mkdir()
    with mock.patch.dict(experiments.EXPERIMENT_RUNNERS, {"init": broken}), pytest.raises(ValueError):
        profile_run.run_profile(_cfg(tmp_path, experiments="init"), tmp_path / "r")


def test_interrupt_between_experiments_keeps_finished_ones(tmp_path):
    from gpt2_lightning.profile import experiments
    from gpt2_lightning.profile import run as profile_run
    from gpt2_lightning.profile.interrupts import RunInterrupted

    def interrupted(cfg, run_dir):
        raise RunInterrupted(signal.SIGTERM)

    (tmp_path / "r").mkdir()
    with mock.patch.dict(experiments.EXPERIMENT_RUNNERS, {"train": interrupted}), pytest.raises(RunInterrupted):
        profile_run.run_profile(_cfg(tmp_path, experiments="init,train"), tmp_path / "r")
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["status"] == "incomplete" and data["interrupted_by"] == "SIGTERM"
    assert data["experiments"]["init"]["phases"]["init"]["n"] == 2
    assert data["experiments"]["train"]["interrupted"] is True


def test_results_written_atomically(tmp_path):
    from gpt2_lightning.report.results import atomic_write_text

    target = tmp_path / "results.json"
    target.write_text("old")
    with mock.patch("os.replace", side_effect=OSError("disk full")), pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"  # a failed write never leaves a half-written file
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # and no temp file behind
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_same_seed_same_tokens_and_losses():
    import lightning as L

    from gpt2_lightning.profile.trainers import make_datamodule, make_module, make_trainer

    class Losses(L.Callback):
        def __init__(self):
            self.values = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.values.append((batch[0].clone(), outputs["loss"].detach().clone()))

    def train(seed):
        cfg = _cfg("/tmp", seed=seed)
        rec = Losses()
        make_trainer(cfg, [rec], max_steps=4).fit(make_module(cfg), datamodule=make_datamodule(cfg, 4))
        return rec.values

    a, b, c = train(3), train(3), train(4)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    assert a[0][1] != c[0][1]
