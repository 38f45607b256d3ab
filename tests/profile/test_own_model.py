"""profile.py and train.py on your own LightningModule (--module): the study, its FLOPs, its title, its refusals."""

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import ROOT

OWN = "tests/profile/own_models.py"
V, D, LAYERS, B, T = 64, 16, 2, 4, 8  # TinyLM's defaults and TokenData's shape, as the test passes them


def _run(tool, *args):
    """The CLI's main in this process (a fresh python would spend most of a test importing torch): its exit code
    and what it printed."""
    from gpt2_lightning.profile.cli import main as profile_main
    from gpt2_lightning.train.cli import main as train_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = (profile_main if tool == "profile.py" else train_main)(list(args))
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def tiny_lm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("own")
    proc = _run("profile.py", "--accelerator", "cpu", "--module", f"{OWN}:TinyLM", "--module-args",
                json.dumps({"width": D, "layers": LAYERS}), "--datamodule", f"{OWN}:TokenData", "--datamodule-args",
                json.dumps({"vocab": V}), "--batch-size", str(B), "--seq-len", str(T), "--steps", "3",
                "--warmup-steps", "1", "--no-energy", "--threads", "1", "--out", str(out), "--run-name", "r")
    return proc, out / "r"


def test_own_module_runs_the_whole_study_and_records_its_settings(tiny_lm_run):
    proc, run_dir = tiny_lm_run
    assert proc.returncode == 0, proc.stderr
    data = json.loads((run_dir / "results.json").read_text())
    c = data["config"]
    assert (c["module"], c["module_args"]) == (f"{OWN}:TinyLM", {"width": D, "layers": LAYERS})
    assert (c["datamodule"], c["datamodule_args"]) == (f"{OWN}:TokenData", {"vocab": V})
    assert (c["model"], c["batch_size"], c["seq_len"]) == ("TinyLM", B, T)
    assert c["repeated_layers"] == [{"name": "blocks", "count": LAYERS, "class": "Block"}]
    # by hand: embedding V*d, each block's Linear d*d + d, the head d*V without bias
    params = V * D + LAYERS * (D * D + D) + D * V
    assert c["num_params"] == params
    assert set(data["experiments"]) == {"init", "inference", "train"} and data["status"] == "complete"
    assert data["experiments"]["train"]["phases"]["step"]["n"] == 3
    report = (run_dir / "report.md").read_text()
    assert report.startswith(f"# TinyLM ({params / 1000:.4g}k parameters) profile: ")
    assert "TinyLM on cpu" in proc.stdout and "GPT-2" not in report.split("\n")[0]


def test_tflops_times_step_is_flopcountermodes_count(tiny_lm_run):
    """TFLOP/s x the median step = the FLOPs of that step, counted here on a fresh instance (and by hand)."""
    proc, run_dir = tiny_lm_run
    assert proc.returncode == 0, proc.stderr
    from tests.profile.own_models import TinyLM

    model, ids = TinyLM(vocab=V, width=D, layers=LAYERS), torch.randint(0, V, (B, T))
    with FlopCounterMode(display=False) as train_count:
        model.training_step({"input_ids": ids}, 0).backward()
    with torch.no_grad(), FlopCounterMode(display=False) as forward_count:
        model.predict_step({"input_ids": ids}, 0)
    forward_by_hand = 2 * B * T * (LAYERS * D * D + D * V)  # the matmuls; the embedding lookup does none
    assert forward_count.get_total_flops() == forward_by_hand
    assert train_count.get_total_flops() == 3 * forward_by_hand  # backward: input and weight gradients, 2x forward
    data = json.loads((run_dir / "results.json").read_text())
    for exp, phase, count in (("train", "step", train_count), ("inference", "forward", forward_count)):
        result = data["experiments"][exp]
        thr = result["throughput"]
        assert thr["flops_source"] == "FlopCounterMode"
        achieved = thr["tflops"] * 1e12 * result["phases"][phase]["median_ms"] / 1000.0
        assert achieved == pytest.approx(count.get_total_flops(), rel=1e-9)
    assert f"train: FLOPs per step {3 * forward_by_hand / 1e3:.4g}k by FlopCounterMode" in proc.stdout


@pytest.mark.parametrize("args, says", [
    (["--module", "tests/profile/nowhere.py:X"], "--module tests/profile/nowhere.py:X: tests/profile/nowhere.py: no "
                                                 "such file"),
    (["--module", "no_such_package.models:X"], "does not import (ModuleNotFoundError"),
    (["--module", f"{OWN}:Missing"], "has no 'Missing'"),
    (["--module", f"{OWN}:NotAModule"], "NotAModule is not a LightningModule subclass"),
    (["--module", f"{OWN}:TinyLM", "--datamodule", f"{OWN}:TinyLM"], "TinyLM is not a LightningDataModule subclass"),
    (["--module", "TinyLM"], "PKG.MOD:CLASS or path/to/file.py:CLASS"),
    (["--module", f"{OWN}:TinyLM", "--module-args", "{width: 8}"], "--module-args {width: 8}: is not JSON"),
    (["--module", f"{OWN}:TinyLM", "--module-args", "[8]"], "must be a JSON object"),
    (["--module", f"{OWN}:TinyLM", "--module-args", '{"depth": 3}', "--datamodule", f"{OWN}:TokenData"],
     "TinyLM refused them (TypeError"),
    (["--module", f"{OWN}:Strict", "--module-args", '{"width": 12}', "--datamodule", f"{OWN}:TokenData"],
     "Strict refused them (ValueError: width must be a multiple of 8, got 12)"),
    (["--module", f"{OWN}:NoData"], "has no train_dataloader: give --datamodule"),
    (["--module-args", '{"width": 8}'], "needs --module"),
    (["--module", f"{OWN}:TinyLM", "--n-layer", "2"], "--n-layer 2: is for the built-in GPT-2"),
    (["--module", f"{OWN}:TinyLM", "--model", "tiny"], "--model tiny: is the built-in GPT-2's preset"),
    (["--module", f"{OWN}:TinyLM", "--activation-checkpointing"],  # a switch is named alone, never "True"
     "error: --activation-checkpointing: is for the built-in GPT-2"),
    (["--module", f"{OWN}:TinyLM", "--sweep", "module_args=1,2"], "module_args.NAME"),
])
def test_bad_module_input_is_one_line_and_exit_2(args, says, tmp_path, capsys, monkeypatch):
    from gpt2_lightning.profile.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["--accelerator", "cpu", "--out", str(tmp_path), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert not any(tmp_path.iterdir())  # no run directory left behind


def test_an_experiment_the_model_cannot_run_is_skipped_with_one_line(tmp_path):
    proc = _run("profile.py", "--accelerator", "cpu", "--module", f"{OWN}:NoPredict", "--experiments",
                "inference", "--no-energy", "--out", str(tmp_path), "--run-name", "r")
    assert proc.returncode == 0, proc.stderr
    why = "NoPredict defines neither predict_step nor forward"
    assert f"profile.py: inference: skipped: {why}" in proc.stderr
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["experiments"]["inference"] == {"skipped": why}
    assert f"**Skipped:** {why}" in (tmp_path / "r" / "report.md").read_text()


def test_train_py_trains_your_module_without_data(tmp_path):
    proc = _run("train.py", "--accelerator", "cpu", "--module", f"{OWN}:TinyLM", "--datamodule", f"{OWN}:TokenData",
                "--max-steps", "4", "--warmup-steps", "1", "--out", str(tmp_path), "--run-name", "t")
    assert proc.returncode == 0, proc.stderr
    # the module's configure_optimizers sets its rate: no word on --lr-warmup-steps (100 by default, > 4 steps)
    assert "warning" not in proc.stderr and "--lr" not in proc.stderr, proc.stderr
    # train.py's --resume would refuse this run's checkpoint: its last lines offer Lightning's ckpt_path instead
    assert "--resume" not in proc.stdout.replace("train.py --resume continues the built-in GPT-2 only", "")
    assert f"trainer.fit(..., ckpt_path='{tmp_path / 't' / 'checkpoints' / 'last.ckpt'}')" in proc.stdout
    # one logged step (the last, 3: fewer steps than --log-every 10): said once, not "x at step 3 -> x at step 3"
    loss = json.loads((tmp_path / "t" / "results.json").read_text())["experiments"]["train"]["train_loss"]
    assert [x["step"] for x in loss] == [3]
    assert f"train loss: {loss[0]['loss']:.4f} at step 3 (the only logged step)" in proc.stdout.splitlines()
    data = json.loads((tmp_path / "t" / "results.json").read_text())
    assert data["config"]["module"] == f"{OWN}:TinyLM" and data["experiments"]["train"]["global_step"] == 4
    assert data["experiments"]["train"]["throughput"]["flops_source"] == "FlopCounterMode"
    assert (tmp_path / "t" / "report.md").read_text().startswith("# TinyLM (2.592k parameters) training run: ")


def test_train_py_refuses_no_data_and_resume_with_module(tmp_path, capsys, monkeypatch):
    from gpt2_lightning.train.cli import main

    monkeypatch.chdir(ROOT)
    for args, says in ((["--model", "tiny"], "--data None: is required"),
                       (["--module", f"{OWN}:TinyLM", "--resume", "x.ckpt"],
                        "--resume x.ckpt: resumes the built-in GPT-2 only")):
        assert main(["--accelerator", "cpu", "--out", str(tmp_path), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], lines


def test_activation_checkpointing_reaches_gpt2s_config():
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.trainers import make_module
    from gpt2_lightning.train.cli import parse

    cfg = ProfileConfig(accelerator="cpu", model="tiny", activation_checkpointing=True)
    assert make_module(cfg).config.activation_checkpointing is True
    assert ProfileConfig(accelerator="cpu", model="tiny").gpt_config().activation_checkpointing is False
    _, train_cfg, _ = parse(["--data", "d", "--activation-checkpointing", "--accelerator", "cpu"])
    assert train_cfg.activation_checkpointing is True  # train.run builds GPT-2 from cfg.gpt_config(), as above


DOCS_COMMAND = ["--module", "examples/hf_llama.py:HFLlama", "--module-args", '{"layers": 2}', "--accelerator", "cpu"]


def test_a_planted_sleep_in_one_hf_layer_raises_the_train_forward_by_that_time(tmp_path):
    """The docs' command (examples/hf_llama.py, a Hugging Face Llama), then the same model with one decoder layer
    sleeping in its forward: the train forward median rises by the planted time."""
    sleep_ms = 300.0  # far above a tiny Llama's forward (~10 ms here) and a busy machine's noise
    slow = ["--module", "tests/profile/own_hf_models.py:SlowLayerLlama", "--module-args",
            json.dumps({"sleep_ms": sleep_ms, "layers": 2}), "--accelerator", "cpu"]
    forward = {}
    for name, args in (("docs", DOCS_COMMAND), ("slow", slow)):
        proc = _run("profile.py", *args, "--experiments", "train", "--steps", "3", "--warmup-steps", "1",
                    "--no-energy", "--threads", "1", "--out", str(tmp_path), "--run-name", name)
        assert proc.returncode == 0, proc.stderr
        data = json.loads((tmp_path / name / "results.json").read_text())
        forward[name] = data["experiments"]["train"]["phases"]["forward"]["median_ms"]
    # by hand: embedding and untied head 2 x 512 x 64; per layer q, k, v, o 4 x 64 x 64, gate, up, down 3 x 64 x 256
    # and two RMSNorms 2 x 64; the final norm 64
    params = 2 * 512 * 64 + 2 * (4 * 64 * 64 + 3 * 64 * 256 + 2 * 64) + 64
    assert data["config"]["model"] == "SlowLayerLlama" and data["config"]["num_params"] == params
    assert 0.95 * sleep_ms <= forward["slow"] - forward["docs"] <= sleep_ms + 60.0, forward


def test_the_docs_example_is_short_and_its_command_is_the_tested_one():
    assert len((Path(ROOT) / "examples" / "hf_llama.py").read_text().splitlines()) < 30
    command = " ".join(DOCS_COMMAND).replace('{"layers": 2}', """'{"layers": 2}'""")
    for page in ("docs/own-model.md", "README.md"):
        assert command in (Path(ROOT) / page).read_text(), page


def test_the_docs_say_how_to_install_what_the_example_imports_beyond_the_tool():
    """examples/hf_llama.py imports transformers, which only the [dev] extra has: the page gives the install line
    with pyproject's own version range, and the extra."""
    import ast
    import re
    import tomllib

    tree = ast.parse((Path(ROOT) / "examples" / "hf_llama.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    project = tomllib.loads((Path(ROOT) / "pyproject.toml").read_text())["project"]

    def by_name(specs):
        return {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]: spec for spec in specs}

    core, dev = by_name(project["dependencies"]), by_name(project["optional-dependencies"]["dev"])
    extra = sorted(name for name in imported if name not in core)
    assert extra == ["transformers"]  # what this test was written for; a new import needs its line on the page too
    page = (Path(ROOT) / "docs" / "own-model.md").read_text()
    for name in extra:
        assert f'pip install "{dev[name]}"' in page, name
    assert 'pip install -e ".[dev]"' in page


def test_a_sweep_over_the_modules_own_args_makes_one_config_per_value():
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.sweep_settings import sweep_configs, swept_value

    cfg = ProfileConfig(accelerator="cpu", module=f"{OWN}:TinyLM", module_args='{"width": 16}',
                        sweep="module_args.layers=1,2,x")
    configs = sweep_configs(cfg)
    assert [c.module_args for c in configs] == [{"width": 16, "layers": 1}, {"width": 16, "layers": 2},
                                                {"width": 16, "layers": "x"}]  # JSON values, else strings
    assert [swept_value(c, "module_args.layers") for c in configs] == [1, 2, "x"] and cfg.module_args == {"width": 16}


def test_compare_calls_another_module_argument_another_model():
    """Two runs of one class with other --module-args are two models to the comparison and its gate; so are the
    built-in GPT-2 with and without --activation-checkpointing."""
    from gpt2_lightning.report.compare import settings_table
    from gpt2_lightning.report.gate import mismatched

    def run(**config):
        return {"config": {"model": "TinyLM", "batch_size": 4, "seq_len": 8, **config}, "env": {}}

    a = run(module=f"{OWN}:TinyLM", module_args={"layers": 2}, datamodule=f"{OWN}:TokenData")
    b = run(module=f"{OWN}:TinyLM", module_args={"layers": 4}, datamodule=f"{OWN}:TokenData")
    differ, same = settings_table([a, b])
    assert mismatched(differ) == [("model", [f'{OWN}:TinyLM {{"layers": 2}}', f'{OWN}:TinyLM {{"layers": 4}}'])]
    assert ("data", f"{OWN}:TokenData") in same
    differ, _ = settings_table([run(model="tiny"), run(model="tiny", activation_checkpointing=True)])
    assert mismatched(differ) == [("model", ["tiny", "tiny (activation checkpointing)"])]


def test_a_module_with_its_own_flops_per_batch_keeps_them_and_the_count_stands_beside(monkeypatch):
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.workload import flops_fields, workload_for

    monkeypatch.chdir(ROOT)
    cfg = ProfileConfig(accelerator="cpu", module=f"{OWN}:OwnFlops", datamodule=f"{OWN}:TokenData", batch_size=B,
                        seq_len=T)
    forward_by_hand = 2 * B * T * (LAYERS * D * D + D * V)
    assert flops_fields(cfg, "train") == {"flops_source": "the module's flops_per_batch",
                                          "flops_per_step": 3000.0 * B * T,
                                          "flops_counted_per_step": 3 * forward_by_hand}
    module = workload_for(cfg).make_module()
    assert module.flops_per_batch(2, T, training=False) == 1000.0 * 2 * T  # its own method, not replaced


def test_the_hf_llamas_counted_flops_include_attention(monkeypatch):
    """By hand for the docs' Llama (B4 x T64, d 64, 2 layers, MLP 256, vocabulary 512): 2 FLOPs per matmul weight per
    token, plus attention's two T x T matmuls (4 B T^2 d per layer); training 3x. torch's fused CPU attention kernel
    is invisible to FlopCounterMode: counted through the math backend, attention is in."""
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.workload import workload_for

    monkeypatch.chdir(ROOT)
    b, t, d, layers = 4, 64, 64, 2
    matmul_weights = layers * (4 * d * d + 3 * d * 256) + d * 512
    forward = 2 * matmul_weights * b * t + layers * 4 * b * t * t * d
    counted = workload_for(ProfileConfig(accelerator="cpu", module="examples/hf_llama.py:HFLlama")).measured_flops()
    assert (counted["inference"], counted["train"]) == (forward, 3 * forward)


def test_the_study_gets_exactly_the_batches_it_needs_from_any_loader():
    from gpt2_lightning.profile.workload_module import _Batches

    assert list(_Batches([1, 2], 5)) == [1, 2, 1, 2, 1] and len(_Batches([1, 2], 5)) == 5  # round again
    assert list(_Batches(range(10), 3)) == [0, 1, 2]  # cut
    assert list(_Batches([], 3)) == []  # an empty loader ends, never loops


def test_tensorboards_hparams_name_your_model_and_its_data():
    from gpt2_lightning.report.tensorboard_summary import hparams

    config = {"model": "TinyLM", "module": f"{OWN}:TinyLM", "module_args": {"layers": 2}, "num_params": 2592,
              "batch_size": 4, "seq_len": 8}
    got = hparams({"config": config, "env": {}}, "train")
    assert (got["model"], got["shape"], got["tokens"]) == ("TinyLM", "2592 parameters, args {'layers': 2}",
                                                           "the module's own")
    got = hparams({"config": config | {"datamodule": f"{OWN}:TokenData"}, "env": {}}, "train")
    assert got["tokens"] == f"{OWN}:TokenData"


def test_init_times_the_modules_constructor_apart(tmp_path):
    """A constructor that sleeps 200 ms: ``construct`` holds it, Lightning's set-up (``init``) does not."""
    proc = _run("profile.py", "--accelerator", "cpu", "--module", f"{OWN}:SlowInit", "--module-args",
                '{"sleep_ms": 200}', "--datamodule", f"{OWN}:TokenData", "--experiments", "init", "--steps", "3",
                "--warmup-steps", "1", "--no-energy", "--out", str(tmp_path), "--run-name", "r")
    assert proc.returncode == 0, proc.stderr
    init = json.loads((tmp_path / "r" / "results.json").read_text())["experiments"]["init"]
    assert init["construct"]["n"] == 3 and 200.0 <= init["construct"]["median_ms"] < 260.0
    assert init["phases"]["init"]["median_ms"] < 100.0
    assert "The module's constructor, before any Trainer" in (tmp_path / "r" / "report.md").read_text()


def test_the_gpt2_workload_names_its_class_and_its_repeated_blocks():
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.profile.workload import workload_for

    record = workload_for(ProfileConfig(accelerator="cpu", model="tiny", batch_size=2, seq_len=64)).record()
    d, layers, vocab = 128, 4, 1024  # tiny: 4 layers x 128 wide, 1024 tokens (already a multiple of 64)
    per_block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    assert record["num_params"] == vocab * d + layers * per_block + 2 * d + 1024 * d  # + ln_f, + position table
    assert (record["model"], record["model_class"]) == ("tiny", "GPT2LightningModule")
    assert record["repeated_layers"] == [{"name": "model.transformer.h", "count": layers, "class": "Block"}]


def test_compile_and_devices_can_be_swept():
    from gpt2_lightning.profile.settings import ConfigError, ProfileConfig
    from gpt2_lightning.profile.sweep_settings import sweep_configs

    configs = sweep_configs(ProfileConfig(accelerator="cpu", model="tiny", sweep="compile=off,on"))
    assert [c.compile for c in configs] == [False, True]
    configs = sweep_configs(ProfileConfig(accelerator="cpu", model="tiny", sweep="devices=1,2"))
    assert [c.world_size for c in configs] == [1, 2]
    with pytest.raises(ConfigError, match="compile values are on or off"):
        sweep_configs(ProfileConfig(accelerator="cpu", model="tiny", sweep="compile=maybe,on"))
