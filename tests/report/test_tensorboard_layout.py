"""TensorBoard's first screen: short run names, no epoch chart, headline figures after the per-step groups."""

import pytest

from callbacks.timing import summarize


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_logger_writes_to_run_slash_experiment_and_drops_epoch(tmp_path):
    from gpt2_lightning.report.tensorboard_logs import make_logger, tensorboard_dir

    logger = make_logger(tmp_path / "my-run", "train")
    assert tensorboard_dir(tmp_path / "my-run", "train") == tmp_path / "my-run" / "train"
    assert logger.log_dir == str(tmp_path / "my-run" / "train")
    logger.log_metrics({"train/loss": 2.5, "epoch": 0}, step=3)  # what Lightning's logger connector sends
    logger.log_metrics({"epoch": 0}, step=4)
    logger.finalize("success")
    assert _scalars(tmp_path / "my-run" / "train") == {"train/loss": [(3, 2.5)]}


def test_headline_metrics_sort_after_the_per_step_groups_and_each_column_holds_one_kind():
    from gpt2_lightning.report.tensorboard_summary import HEADLINE_GROUP, headline_metrics

    result = {"phases": {"step": summarize([10.0, 11.0, 12.0, 10.5, 11.5])},
              "throughput": {"tokens_per_sec": 100.0, "samples_per_sec": 2.0, "tflops": 0.5, "mfu_pct": None},
              "memory": {"max_rss_gib": 0.4}, "val_loss": [{"step": 0, "loss": 5.5}, {"step": 20, "loss": 4.25}]}
    metrics = headline_metrics("train", result)
    # 0.5 TFLOP/s is charted in the console's unit, as 500 GFLOP/s (0.50 would read as nothing on a CPU)
    assert set(metrics) == {f"{HEADLINE_GROUP}/{k}" for k in ("step_ms", "p90_over_p10", "tokens_per_sec", "gflops",
                                                              "max_rss_gib", "val_loss")}
    assert metrics[f"{HEADLINE_GROUP}/gflops"] == 500.0
    assert metrics[f"{HEADLINE_GROUP}/step_ms"] == 11.0 and metrics[f"{HEADLINE_GROUP}/val_loss"] == 4.25
    # TensorBoard orders chart groups by name and opens the first two: the per-step groups must come first
    assert sorted(["throughput", "time", HEADLINE_GROUP])[-1] == HEADLINE_GROUP
    # a build, a forward pass and a step are never one column
    init = headline_metrics("init", {"phases": {"init": summarize([5.0, 6.0, 7.0])}})
    assert set(init) == {f"{HEADLINE_GROUP}/build_ms", f"{HEADLINE_GROUP}/p90_over_p10"}
    inference = headline_metrics("inference", {"phases": {"forward": summarize([5.0, 6.0, 7.0])}})
    assert f"{HEADLINE_GROUP}/forward_ms" in inference and f"{HEADLINE_GROUP}/build_ms" not in inference


def test_hparams_are_the_same_settings_for_every_run_with_the_key_ones_first():
    from gpt2_lightning.report.tensorboard_summary import hparams

    profile = {"config": {"run_dir": "/runs/x", "out": "/runs", "model": "tiny", "precision": "32-true",
                          "batch_size": 4, "seq_len": 64, "compile": False, "data": None, "profiler": "none",
                          "strategy": "auto", "devices": "1", "num_nodes": 1, "steps": 5, "init_on": "device",
                          "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 64, "bias": True}},
               "env": {"device_name": "AMD EPYC", "torch": "2.13.0", "lightning": "2.6.6", "hostname": "h"}}
    params = hparams(profile, "train")
    assert params["shape"] == "2L 2H 64d" and params["tokens"] == "synthetic" and params["tool"] == "profile.py"
    assert params["experiment"] == "train" and params["batch"] == "B4×T64" and params["run"] == "x"
    assert "/runs/x" not in params.values()
    trained = {"config": {**profile["config"], "train": {"lr": 1e-3}, "data": "data/x"}, "env": profile["env"]}
    assert set(hparams(trained)) == set(params) and hparams(trained)["tool"] == "train.py"
    assert set(hparams({})) == set(params)  # even a run missing everything declares the same columns
    # TensorBoard ticks the first five by name: the ones that matter most, the experiment among them
    assert sorted(params)[:5] == ["batch", "device", "experiment", "model", "precision"]


def _hparams_session(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content
    experiment = metadata.parse_experiment_plugin_data(content)
    start = metadata.parse_session_start_info_plugin_data(
        acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content)
    return acc, experiment, start


def test_every_session_declares_the_same_metrics_and_a_trial_name_that_fits(tmp_path):
    from gpt2_lightning.report.tensorboard_summary import HEADLINE_METRICS, write_tensorboard_summary

    run_dir = tmp_path / "20261130-095812"
    data = {"config": {"model": "tiny", "run_dir": str(run_dir), "out": str(tmp_path)}, "env": {},
            "experiments": {"init": {"phases": {"init": summarize([5.0, 6.0, 7.0])}}}}
    write_tensorboard_summary(data, run_dir, {})
    acc, experiment, start = _hparams_session(run_dir / "init")
    assert [m.name.tag for m in experiment.metric_infos] == [f"whole_run/{m}" for m in HEADLINE_METRICS]
    assert set(acc.Tags()["scalars"]) == {"whole_run/build_ms", "whole_run/p90_over_p10"}
    # the Trial ID column shows 15 characters (headless Chromium): the time, not the date all rows share (the run
    # column has it)
    assert start.group_name == "09:58:12 init"
    assert start.hparams["experiment"].string_value == "init"
    named = {**data, "config": {**data["config"], "run_dir": str(tmp_path / "bs8")}}
    write_tensorboard_summary(named, tmp_path / "bs8", {})
    assert _hparams_session(tmp_path / "bs8" / "init")[2].group_name == "bs8 init"


def test_with_energy_the_per_step_groups_still_open_first(tmp_path, monkeypatch):
    """TensorBoard sorts chart groups by name and opens the first two: a run that measured energy must still open on
    throughput/ and time/ (energy/ and power/ sorted first when the callback logged them), its energy figures
    among the once-per-experiment whole_run/ ones."""
    import callbacks.energy
    import gpt2_lightning.profile.energy as energy_run
    from gpt2_lightning.profile.run import run_profile
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.report.tensorboard_summary import HEADLINE_GROUP
    from tests.helpers import WallMeter

    monkeypatch.setattr(callbacks.energy, "meter_for", lambda device: WallMeter(100.0, "nvml"))
    monkeypatch.setattr(energy_run, "meter_for", lambda device: WallMeter(100.0, "nvml"))
    monkeypatch.setattr(energy_run, "_idle_cache", {})
    monkeypatch.setattr(energy_run, "IDLE_S", 0.2)
    cfg = ProfileConfig(accelerator="cpu", model="tiny", batch_size=1, seq_len=8, warmup_steps=1, steps=2,
                        experiments="train", energy_window_s=1.0, no_diagnose=True)
    results = run_profile(cfg, tmp_path)
    energy = results.experiments["train"]["energy"]
    assert energy["avg_watts"] == pytest.approx(100.0, rel=0.05)  # the stand-in's 100 W, read at the window's ends
    scalars = _scalars(tmp_path / "train")
    groups = sorted({tag.split("/")[0] for tag in scalars})
    assert groups[:2] == ["throughput", "time"], groups
    assert groups[-1] == HEADLINE_GROUP
    assert scalars[f"{HEADLINE_GROUP}/avg_watts"][0][1] == pytest.approx(energy["avg_watts"])
    assert scalars[f"{HEADLINE_GROUP}/joules_per_token"][0][1] == pytest.approx(energy["joules_per_token"])


def test_a_cpu_rate_is_charted_in_gflops_as_the_console_says_it(tmp_path):
    from gpt2_lightning.report.render import fmt_flops
    from gpt2_lightning.report.tensorboard_logs import make_logger

    logger = make_logger(tmp_path / "r", "train")
    logger.log_metrics({"throughput/tflops": 0.0458, "throughput/tokens_per_sec": 9.0}, step=0)
    logger.log_metrics({"throughput/tflops": 1.2}, step=1)  # one chart name for the whole run, fixed by its first
    logger.finalize("success")
    scalars = _scalars(tmp_path / "r" / "train")
    assert fmt_flops(0.0458) == "45.80 GFLOP/s"  # the console's figure ...
    assert scalars["throughput/gflops"] == [(0, pytest.approx(45.8)), (1, pytest.approx(1200.0))]  # ... charted
    assert "throughput/tflops" not in scalars
    gpu = make_logger(tmp_path / "g", "train")
    gpu.log_metrics({"throughput/tflops": 250.0}, step=0)
    gpu.finalize("success")
    assert _scalars(tmp_path / "g" / "train") == {"throughput/tflops": [(0, 250.0)]}


@pytest.mark.parametrize("name, exp, trial", [
    ("20261204-223841", "inference", "22:38:41 infer"),  # was "22:38:41 inference 2026-12-04", cut at 15
    ("bs8", "train", "bs8 train"),
    ("cpu-vs-gpu/cpu", "inference", "cpu-~/cpu infer"),
    ("a-very-long-experiment-name", "init", "a-ve~-name init"),
])
def test_trial_ids_read_whole_in_the_15_characters_hparams_shows(name, exp, trial):
    from gpt2_lightning.report.tensorboard_summary import TRIAL_ID_CHARS, trial_name

    data = {"config": {"run_dir": f"/runs/{name}", "out": "/runs"}}
    assert trial_name(data, exp) == trial and len(trial) <= TRIAL_ID_CHARS == 15


def test_profiled_and_delayed_runs_are_marked_in_a_default_column():
    from gpt2_lightning.report.tensorboard_summary import hparams

    base = {"config": {"profiler": "none"}, "env": {"device_type": "cpu", "device_name": "Intel(R) Xeon(R) Processor"}}
    assert hparams(base, "train")["experiment"] == "train"
    assert hparams(base, "inference")["experiment"] == "infer"  # the Trial ID's word
    assert hparams(base, "train")["device"] == "CPU Intel Xeon Processor"
    simple = {**base, "config": {"profiler": "simple"}}
    assert hparams(simple, "train")["experiment"] == "train·prof"
    # --profiler pytorch on a CPU profiles only the diagnosis's extra steps: the counted ones ran un-profiled
    assert hparams({**base, "config": {"profiler": "pytorch"}}, "train")["experiment"] == "train"
    gpu_pytorch = {"config": {"profiler": "pytorch"}, "env": {"device_type": "cuda", "device_name": "NVIDIA H100"}}
    assert hparams(gpu_pytorch, "train")["experiment"] == "train·prof"
    both = {**base, "config": {"profiler": "simple", "add_delay_ms": 5.0}}
    assert hparams(both, "inference")["experiment"] == "infer·prof·delay"
    # HParams' experiment column is about as narrow as the Trial ID's: "inference (profiled)" read
    # "inference (profil..." in headless Chromium, "infer·prof·delay" whole (docs/reading-results.md)
    assert max(len(hparams(both, exp)["experiment"]) for exp in ("init", "inference", "train")) <= 16
    gpu = {"env": {"device_type": "cuda", "device_name": "NVIDIA H100 80GB HBM3"}}
    assert hparams(gpu, "train")["device"] == "H100 80GB HBM3"


def test_a_rewritten_summary_replaces_the_last_one(tmp_path):
    """A --repeat run rewrites its summary after every repeat: TensorBoard must show one HParams session and one
    headline point, the last."""
    from gpt2_lightning.report.tensorboard_summary import write_tensorboard_summary

    run_dir = tmp_path / "rep"
    for median in (5.0, 9.0):
        data = {"config": {"run_dir": str(run_dir), "out": str(tmp_path)}, "env": {},
                "experiments": {"init": {"phases": {"init": summarize([median] * 3)}}}}
        write_tensorboard_summary(data, run_dir, {})
    assert len(list((run_dir / "init").glob("*tfevents*"))) == 1
    assert _scalars(run_dir / "init")["whole_run/build_ms"] == [(0, 9.0)]


def test_repeats_leave_one_tensorboard_run_per_experiment_and_can_be_shown_again(tmp_path, monkeypatch, capsys):
    """--repeat 3: TensorBoard's run list holds the run's experiments and summary, not 3 x 4 more; the repeats'
    per-step logs stay on disk and come back with --show-repeats."""
    import json

    from tensorboard.backend.event_processing.io_wrapper import GetLogdirSubdirectories

    import gpt2_lightning.profile.repeats as repeats
    from gpt2_lightning.profile.settings import ProfileConfig
    from gpt2_lightning.report.tensorboard_logs import main as tensorboard_logs_main
    from gpt2_lightning.report.tensorboard_logs import make_logger
    from tests.report.test_judgement import single

    def fake_child(cfg, target):  # what a repeat's process leaves: results.json and per-step event files
        data = single([10.0, 11.0, 12.0, 10.5, 11.5])
        data["config"].update(run_dir=str(target), out=str(tmp_path))
        (target / "results.json").write_text(json.dumps(data))
        logger = make_logger(target, "train")
        logger.log_metrics({"time/step_ms": 10.0}, step=0)
        logger.finalize("success")
        return 0

    monkeypatch.setattr(repeats, "run_child", fake_child)
    cfg = ProfileConfig(accelerator="cpu", model="tiny", repeat=3, out=str(tmp_path), run_name="rep")
    repeats.measure_in_processes([cfg], [tmp_path / "rep"], lambda *a, **k: None)
    listed = {str(p.relative_to(tmp_path)) for p in map(__import__("pathlib").Path,
                                                          GetLogdirSubdirectories(str(tmp_path)))}
    assert listed == {"rep/train", "rep/summary"}, listed  # TensorBoard's own lister
    assert tensorboard_logs_main(["--show-repeats", str(tmp_path / "rep")]) == 0
    assert "event file(s)" in capsys.readouterr().out
    shown = {str(__import__("pathlib").Path(p).relative_to(tmp_path)) for p in GetLogdirSubdirectories(str(tmp_path))}
    assert {f"rep/repeat-{i}/train" for i in (1, 2, 3)} <= shown
