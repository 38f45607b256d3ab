"""Several processes, without running any: oversubscribed cores warn, the planted straggler's flag, the devices sweep's
scaling efficiency and the projection set beside a measured multi-process run (hand-computed figures)."""

from unittest import mock

import pytest

from gpt2_lightning.profile.settings import ConfigError, ProfileConfig


def test_more_processes_than_cores_warn_and_run(capsys):
    from gpt2_lightning.profile import cli

    with mock.patch("os.cpu_count", return_value=2):
        cli.check_environment(ProfileConfig(accelerator="cpu", devices="3", strategy="ddp", threads=1))
        err = capsys.readouterr().err
        assert "warning: --devices 3 x --threads 1 = 3 busy threads on 2 CPU core(s)" in err and "oversubscribed" in err
        cli.check_environment(ProfileConfig(accelerator="cpu", devices="2", threads=1))
        assert capsys.readouterr().err == ""
        with pytest.raises(ConfigError, match="--devices 9: this machine has 2 CPU core"):
            cli.check_environment(ProfileConfig(accelerator="cpu", devices="9"))


def test_add_delay_rank_needs_a_delay_and_a_rank_of_the_run():
    assert ProfileConfig(devices="2", add_delay_ms=20, add_delay_rank=1).add_delay_rank == 1
    with pytest.raises(ConfigError, match="--add-delay-rank 2: needs --add-delay-ms and a rank from 0 to 1"):
        ProfileConfig(devices="2", add_delay_ms=20, add_delay_rank=2)
    with pytest.raises(ConfigError, match="--add-delay-rank 0: needs --add-delay-ms"):
        ProfileConfig(add_delay_rank=0)


def _point(processes, train_rate, global_rate, target=10_000_000, project=None):
    train = {"phases": {"step": {"n": 5, "median_ms": 40.0, "p10_ms": 39.0, "p90_ms": 41.0}},
             "throughput": {"tokens_per_sec": train_rate}, "world_size": processes}
    if processes > 1:
        train["global_tokens_per_sec"] = global_rate
    config = {"project_devices": project, "target_tokens": str(target)}
    from gpt2_lightning.report.costs import add_costs

    add_costs(train, "train", config)
    return {"config": {"model": "tiny", "batch_size": 2, "seq_len": 64, "experiments": "train"}, "env": {},
            "experiments": {"train": train}}


def test_devices_sweep_gives_scaling_efficiency_and_labels_rank_0s_rates():
    from gpt2_lightning.profile.sweep import format_sweep, sweep_rows

    # 1 process 6.35k tokens/s; 2 processes: rank 0's own 4.2k, the job 8.37k -> 8.37 / (2 x 6.35) = 65.9%
    rows = sweep_rows("devices", [("2", _point(2, 4200.0, 8370.0)), ("1", _point(1, 6350.0, None))])
    assert [r["devices"] for r in rows] == ["1", "2"] and [r["processes"] for r in rows] == [1, 2]
    assert rows[1]["train scaling efficiency %"] == pytest.approx(100 * 8370 / (2 * 6350))
    assert rows[0]["train global tokens/s"] == 6350.0  # one process: its own rate
    table = format_sweep("devices", rows)
    assert "train tokens/s (rank 0)" in table and "train scaling efficiency %" in table and " 66 " in table


def test_projection_sets_the_assumption_beside_the_measured_processes():
    from gpt2_lightning.report.costs import assumed_vs_measured

    one, two = _point(1, 6350.0, None, project=2), _point(2, 4200.0, 8370.0, project=2)
    assert "scaled" not in two["experiments"]["train"]["projection"]  # 2 measured: nothing assumed about 2
    [line] = assumed_vs_measured([one, two])
    # 10M tokens: assumed 10e6 / (2 x 6350) s = 13.1 min; measured 10e6 / 8370 s = 19.9 min
    assert line.startswith("time to train 10M tokens on 2 devices: assumed 13.1 min")
    assert "measured with 2 processes 19.9 min" in line and line.endswith("scaling efficiency 66%")


def test_each_rank_renames_only_its_own_traces(tmp_path):
    from gpt2_lightning.profile.profilers import name_traces

    for rank in (0, 1):  # Lightning's names, with the rank the tool put in the profiler's file name
        (tmp_path / f"fit-profiler-train-rank{rank}-{rank}-[Strategy]DDPStrategy.training_step.1.pt.trace.json").touch()
    assert name_traces(tmp_path, "train", rank=1, world_size=2) == ["trace-train-rank1.pt.trace.json"]
    assert len(list(tmp_path.glob("fit-profiler-train-rank0-*"))) == 1  # rank 0's file is left to rank 0
    assert name_traces(tmp_path, "train", rank=0, world_size=2) == ["trace-train-rank0.pt.trace.json"]


def test_the_console_labels_rank_0s_own_rate_and_says_the_straggler():
    from gpt2_lightning.report.render import format_summary

    def stats(ms):
        return {"n": 5, "median_ms": ms, "mean_ms": ms, "p10_ms": ms, "p90_ms": ms, "min_ms": ms, "max_ms": ms}

    ranks = [{"rank": 0, "phases": {"forward": stats(3.4)}, "tokens": 128},
             {"rank": 1, "phases": {"forward": stats(28.5)}, "tokens": 128}]
    from gpt2_lightning.analysis.ranks import global_rate, straggler

    rate, basis = global_rate(ranks, "forward")
    inference = {"phases": {"forward": stats(3.4)}, "throughput": {"tokens_per_sec": 128 / 0.0034, "tflops": 1e-4},
                 "memory": {}, "world_size": 2, "ranks": ranks, "straggler": straggler(ranks, "forward"),
                 "global_tokens_per_sec": rate, "global_rate": basis}
    text = format_summary({"env": {}, "config": {"model": "tiny"}, "experiments": {"inference": inference}})
    assert ("inference: world size 2, per-rank medians 3.400 ms / 28.5 ms; global 8.98k tokens/s (the job's 256 "
            "tokens per step, 128 per rank, over rank 1's 28.5 ms)") in text
    assert "inference: rank 1 is the straggler: +25.1 ms per step in forward" in text
    assert "inference: rank 0: 37.65k tokens/s" in text


def test_the_diagnosis_steps_plant_the_delay_on_the_same_rank_only(tmp_path):
    """The diagnosis's extra steps plant --add-delay-ms as the counted steps do: with --add-delay-rank 1, on rank 1
    only (it was planted on every rank there, so each rank's breakdown carried a sleep that its counted steps did not)."""
    from callbacks.delay import PlantedDelay
    from gpt2_lightning.profile import diagnosis

    class Stop(Exception):
        pass

    seen = []

    def capture(cfg, callbacks, **kwargs):
        seen.extend(c for c in callbacks if isinstance(c, PlantedDelay))
        raise Stop

    cfg = ProfileConfig(accelerator="cpu", model="tiny", devices="2", strategy="ddp", add_delay_ms=20, add_delay_rank=1)
    with mock.patch.object(diagnosis, "make_trainer", capture), mock.patch.object(diagnosis, "make_datamodule"), \
            pytest.raises(Stop):
        diagnosis.profile_extra_steps(cfg, None, "train", tmp_path, "train")
    assert [(d.delay_s, d.rank) for d in seen] == [(0.02, 1)]
