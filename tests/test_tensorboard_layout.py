"""TensorBoard's first screen: short run names, no epoch chart, headline figures after the per-step groups."""

from callbacks.timing import summarize


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_logger_writes_to_run_slash_experiment_and_drops_epoch(tmp_path):
    from gpt2_lightning.experiments import make_logger, tensorboard_dir

    logger = make_logger(tmp_path / "my-run", "train")
    assert tensorboard_dir(tmp_path / "my-run", "train") == tmp_path / "my-run" / "train"
    assert logger.log_dir == str(tmp_path / "my-run" / "train")
    logger.log_metrics({"train/loss": 2.5, "epoch": 0}, step=3)  # what Lightning's logger connector sends
    logger.log_metrics({"epoch": 0}, step=4)
    logger.finalize("success")
    assert _scalars(tmp_path / "my-run" / "train") == {"train/loss": [(3, 2.5)]}


def test_headline_metrics_sort_after_the_per_step_groups():
    from gpt2_lightning.run_report import HEADLINE_GROUP, headline_metrics

    result = {"phases": {"step": summarize([10.0, 11.0, 12.0, 10.5, 11.5])},
              "throughput": {"tokens_per_sec": 100.0, "tflops": 0.5, "mfu_pct": None}}
    metrics = headline_metrics("train", result)
    assert set(metrics) == {f"{HEADLINE_GROUP}/{k}" for k in ("median_ms", "p90_over_p10", "tokens_per_sec", "tflops")}
    assert metrics[f"{HEADLINE_GROUP}/median_ms"] == 11.0
    # TensorBoard orders chart groups by name and opens the first two: the per-step groups must come first
    assert sorted(["memory", "throughput", "time", HEADLINE_GROUP])[-1] == HEADLINE_GROUP
    init = headline_metrics("init", {"phases": {"init": summarize([5.0, 6.0, 7.0])}})
    assert set(init) == {f"{HEADLINE_GROUP}/median_ms", f"{HEADLINE_GROUP}/p90_over_p10"}  # same column, every row


def test_hparams_are_the_settings_that_matter():
    from gpt2_lightning.run_report import hparams

    data = {"config": {"run_dir": "/runs/x", "model": "tiny", "precision": "32-true", "batch_size": 4, "seq_len": 64,
                       "compile": False, "data": None, "out": "runs", "if_exists": "error", "verbose": False,
                       "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 64, "bias": True, "dropout": 0.0},
                       "train": {"lr": 1e-3, "lr_warmup_steps": 10, "log_every": 10, "resume": None}},
            "env": {"device_name": "AMD EPYC", "torch": "2.13.0", "lightning": "2.6.6", "hostname": "h"}}
    params = hparams(data)
    assert params == {"model": "tiny", "precision": "32-true", "batch_size": 4, "seq_len": 64, "compile": False,
                      "n_layer": 2, "n_head": 2, "n_embd": 64, "data": "synthetic", "device": "AMD EPYC",
                      "torch": "2.13.0", "lightning": "2.6.6", "made_by": "train.py", "lr": 1e-3,
                      "lr_warmup_steps": 10}
