"""Which device a process drives and times: its own (each rank of --devices 1,2 its own), with the device's start-up
timed before anything else touches CUDA (an fp8 capability check included); and train.py's fp8, really float8 and
measured against the FP8 peak. CUDA's calls are stand-ins that log which device each was asked about."""

from types import SimpleNamespace

import pytest
import torch

from callbacks.timing import DeviceTimer
from gpt2_lightning.profile import device_startup
from gpt2_lightning.profile.settings import ProfileConfig


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine with 4 CUDA devices as torch would answer: every call logs (what, device); the context comes up at
    the first call that needs it."""
    state = {"up": False, "calls": []}

    def up(what, device=None):
        state["up"] = True
        state["calls"].append((what, None if device is None else str(torch.device("cuda", device) if isinstance(
            device, int) else device)))

    def startup(timer):
        up("startup", timer.device)
        return 480.0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("gpt2_lightning.profile.cli.no_nvidia_driver", lambda: False)  # the driver's files too
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: state["up"])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: up("capability", d) or (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: up("name", d) or "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d=None: up("properties", d) or SimpleNamespace(
        total_memory=80 * 1024**3, multi_processor_count=132))
    monkeypatch.setattr(DeviceTimer, "startup_ms", startup)
    monkeypatch.setattr(device_startup, "_STARTUP_MS", {})
    return state


def test_fp8_check_times_the_device_startup_before_asking_for_the_capability(fake_cuda, tmp_path):
    from gpt2_lightning.profile.cli import plan
    from gpt2_lightning.profile.device_startup import device_startup_ms

    pytest.importorskip("torchao")
    plan(["--accelerator", "gpu", "--precision", "fp8", "--model", "tiny", "--out", str(tmp_path), "--run-name", "r"])
    assert [what for what, _ in fake_cuda["calls"]][:2] == ["startup", "capability"]
    assert device_startup_ms(torch.device("cuda", 0)) == 480.0  # measured, not "the device was already up"


def test_each_rank_times_and_records_its_own_device(fake_cuda, tmp_path, monkeypatch):
    from gpt2_lightning.profile import experiments
    from gpt2_lightning.profile.run import run_profile

    monkeypatch.setenv("LOCAL_RANK", "1")  # the second process of --devices 1,2 drives cuda:2
    monkeypatch.setitem(experiments.EXPERIMENT_RUNNERS, "init", lambda cfg, run_dir: {"phases": {}})
    cfg = ProfileConfig(accelerator="gpu", devices="1,2", experiments="init", no_energy=True)
    results = run_profile(cfg, tmp_path, write=False)
    assert results.env["device_startup_ms"] == 480.0 and results.env["device_name"] == "NVIDIA H100 80GB HBM3"
    assert fake_cuda["calls"] and {device for _, device in fake_cuda["calls"]} == {"cuda:2"}, fake_cuda["calls"]
    # a device first reached once CUDA is up can no longer have its start-up measured: None, never a guess
    assert device_startup.device_startup_ms(torch.device("cuda", 3)) is None


def test_train_py_fp8_trains_float8_layers_and_takes_the_fp8_peak(tmp_path, monkeypatch):
    """train.py --precision fp8 is what profile.py's fp8 is: float8 Linear layers, MFU against the FP8 peak."""
    from gpt2_lightning.train import run as training
    from gpt2_lightning.train.cli import parse

    built = {}

    class StubTrainer:
        global_step, is_global_zero = 0, False

        def validate(self, module, datamodule=None, verbose=False):
            built["module"] = module

        def fit(self, module, datamodule=None, ckpt_path=None):
            pass

    def make_trainer(cfg, callbacks, **kwargs):
        built["callbacks"] = callbacks
        return StubTrainer()

    monkeypatch.setattr(training, "make_trainer", make_trainer)
    monkeypatch.setattr(training, "measured_env", lambda device: {})
    monkeypatch.setattr(training, "TokenFileDataModule", lambda *a, **k: None)
    monkeypatch.setattr(training, "make_logger", lambda *a, **k: None)
    (tmp_path / "meta.json").write_text('{"vocab_size": 256, "dtype": "uint16"}')  # the model's vocabulary
    args, cfg, _ = parse(["--data", str(tmp_path), "--precision", "fp8", "--accelerator", "gpu", "--max-steps", "10"])
    training.train(cfg, args, tmp_path)
    assert built["module"].float8 is True
    throughput = next(c for c in built["callbacks"] if type(c).__name__ == "ThroughputCallback")
    assert throughput.precision == "fp8"
    from callbacks import peak_lookup

    assert peak_lookup("NVIDIA H100 80GB HBM3", throughput.precision, "highest")[0] == pytest.approx(1978.9)
