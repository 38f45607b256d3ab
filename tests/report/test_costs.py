"""Cost and time-to-train arithmetic, token counts, the settings that refuse bad prices, and the compare rows."""

import subprocess
from unittest import mock
import sys

import pytest

from gpt2_lightning.report.costs import (
    LINEAR_ASSUMPTION,
    add_costs,
    cost,
    fmt_duration,
    fmt_tokens,
    parse_token_count,
    projection,
    projection_line,
    summary_lines,
)
from gpt2_lightning.profile.settings import ConfigError, ProfileConfig
from tests.conftest import ROOT


@pytest.mark.parametrize("text, tokens", [
    ("300M", 300_000_000), ("10B", 10_000_000_000), ("1.5T", 1_500_000_000_000), ("2500000", 2_500_000),
    ("10b", 10_000_000_000), ("64k", 64_000), (" 7 ", 7), ("1_000", 1000),
])
def test_token_counts(text, tokens):
    assert parse_token_count(text) == tokens


@pytest.mark.parametrize("text", ["", "B", "ten", "1.5", "0", "-3M", "0.0001K", "nanB", "infT", "1.5X", "1e"])
def test_unreadable_token_counts(text):
    with pytest.raises(ValueError, match="positive token count"):
        parse_token_count(text)


def test_cost_per_million_tokens():
    c = cost(tokens_per_sec=10_000.0, devices=2, joules_per_token=0.036, price_per_hour=3.0, energy_price=0.5)
    # a million tokens take 100 s = 1/36 h on 2 devices at $3 each
    assert c["usd_per_million_tokens"] == pytest.approx(100 / 3600 * 3.0 * 2, rel=1e-12)
    # a million tokens at 0.036 J are 36 kJ = 0.01 kWh, at $0.5/kWh
    assert c["usd_per_million_tokens_energy"] == pytest.approx(0.005, rel=1e-12)
    none = cost(tokens_per_sec=None, devices=1, joules_per_token=None, price_per_hour=3.0, energy_price=0.5)
    assert none["usd_per_million_tokens"] is None and none["usd_per_million_tokens_energy"] is None


def test_projection_and_linear_scaling():
    p = projection(tokens=10**10, tokens_per_sec=100_000.0, devices=1, joules_per_token=0.0036, price_per_hour=2.0,
                   energy_price=0.1)
    assert p["hours"] == pytest.approx(10**5 / 3600, rel=1e-12)  # 1e10 / 1e5 = 1e5 s
    assert p["days"] == pytest.approx(10**5 / 86400, rel=1e-12)
    assert p["kwh"] == pytest.approx(10.0, rel=1e-12)  # 1e10 x 0.0036 J = 3.6e7 J
    assert p["usd"] == pytest.approx(10**5 / 3600 * 2.0, rel=1e-12)
    assert p["usd_energy"] == pytest.approx(1.0, rel=1e-12)
    from gpt2_lightning.report.costs import scaled

    s = scaled(p, 8)
    assert s["devices"] == 8 and s["hours"] == pytest.approx(p["hours"] / 8, rel=1e-12)
    assert s["kwh"] == p["kwh"] and s["usd"] == p["usd"] and s["assumption"] == LINEAR_ASSUMPTION


def test_add_costs_default_budget_is_twenty_tokens_per_parameter():
    result = {"throughput": {"tokens_per_sec": 50_000.0}, "energy": {"joules_per_token": 0.01}, "world_size": 1}
    config = {"num_params": 124_000_000, "price_per_hour": 3.0, "energy_price": None, "target_tokens": None,
              "project_devices": 8}
    add_costs(result, "train", config)
    p = result["projection"]
    assert p["target_tokens"] == 2_480_000_000 and "Hoffmann" in p["target_basis"]
    assert p["hours"] == pytest.approx(2_480_000_000 / 50_000 / 3600, rel=1e-12)
    assert p["kwh"] == pytest.approx(2_480_000_000 * 0.01 / 3.6e6, rel=1e-12)
    assert p["scaled"]["devices"] == 8
    assert result["cost"]["usd_per_million_tokens"] == pytest.approx(1e6 / 50_000 / 3600 * 3.0, rel=1e-12)
    assert result["cost"]["usd_per_million_tokens_energy"] is None  # no --energy-price: null, not a guess


def test_add_costs_uses_the_global_rate_of_several_devices():
    result = {"throughput": {"tokens_per_sec": 1000.0}, "global_tokens_per_sec": 4000.0, "world_size": 4}
    add_costs(result, "train", {"num_params": 1, "price_per_hour": 1.0, "target_tokens": "4M"})
    assert result["projection"]["hours"] == pytest.approx(4e6 / 4000 / 3600)
    assert result["projection"]["devices"] == 4 and result["projection"]["usd"] == pytest.approx(4e6 / 4000 / 3600 * 4)
    assert result["projection"]["kwh"] is None  # no energy measured


def test_no_cost_without_a_price_and_nothing_for_failed_experiments():
    result = {"throughput": {"tokens_per_sec": 1000.0}}
    add_costs(result, "inference", {"num_params": 1})
    assert "cost" not in result and "projection" not in result
    failed = {"error": "out of memory"}
    add_costs(failed, "train", {"num_params": 1, "price_per_hour": 1.0})
    assert failed == {"error": "out of memory"}


@pytest.mark.parametrize("hours, text", [
    (127.3 * 24, "127 days"), (9.1, "9.1 h"), (0.5, "30 min"), (10 / 3600, "10 s"), (3 * 365.25 * 24, "3 years"),
])
def test_durations(hours, text):
    assert fmt_duration(hours) == text


def test_token_text():
    assert [fmt_tokens(x) for x in (1e10, 2.48e9, 1.5e12, 3e8)] == ["10B", "2.48B", "1.5T", "300M"]


def test_projection_line_across_runs():
    runs = [{"experiments": {"train": {"projection": {"target_tokens": 10**10, "hours": 127 * 24}}}},
            {"experiments": {"train": {"projection": {"target_tokens": 10**10, "hours": 9.1}}}}]
    assert projection_line(["cpu", "gpu"], runs) == "time to train 10B tokens: cpu 127 days, gpu 9.1 h"
    assert projection_line(["a"], [{"experiments": {}}]) is None


def test_summary_lines_label_the_scaling_assumption():
    result = {"energy": {"unavailable": "rapl: no powercap at /x"}, "projection": {
        "target_tokens": 10**9, "target_basis": "--target-tokens", "hours": 2.0, "devices": 1, "kwh": None,
        "usd": 6.0, "usd_energy": None,
        "scaled": {"devices": 4, "hours": 0.5, "kwh": None, "usd": 6.0, "usd_energy": None,
                   "assumption": LINEAR_ASSUMPTION}}}
    lines = summary_lines("train", result)
    assert lines[0] == "train: energy unavailable: rapl: no powercap at /x"
    assert lines[1] == "train: time to train 1B tokens (--target-tokens): 2 h on 1 device, $6"
    assert lines[2] == f"train: time to train, {LINEAR_ASSUMPTION}: 30 min on 4 devices, $6"


# ------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("kwargs, flag", [
    (dict(price_per_hour=0.0), "--price-per-hour"), (dict(price_per_hour=-3.0), "--price-per-hour"),
    (dict(energy_price=float("nan")), "--energy-price"), (dict(energy_price=float("inf")), "--energy-price"),
    (dict(target_tokens="lots"), "--target-tokens"), (dict(target_tokens="1.5"), "--target-tokens"),
    (dict(project_devices=0), "--project-devices"), (dict(energy_window_s=0.5), "--energy-window-s"),
])
def test_bad_cost_settings_name_the_flag(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        ProfileConfig(**kwargs)


def test_good_cost_settings():
    cfg = ProfileConfig(price_per_hour=3, energy_price=0.15, target_tokens="10B", project_devices=8)
    assert cfg.to_dict()["target_tokens"] == "10B"


@pytest.mark.parametrize("args, needle", [
    (["--price-per-hour", "0"], "--price-per-hour 0: must be a positive number"),
    (["--target-tokens", "ten"], "--target-tokens ten"),
    (["--price-per-hour", "cheap"], "--price-per-hour"),
    (["--project-devices", "-2"], "--project-devices -2"),
])
def test_cli_refuses_bad_prices_before_any_work(tmp_path, args, needle):
    cmd = [sys.executable, "scripts/profile.py", "--accelerator", "cpu", "--model", "tiny", "--out", str(tmp_path),
           *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # no run directory: refused before any work


# ------------------------------------------------------------------------------------------------ compare rows
def _run(step_ms, jpt, tpk, cpu_or_gpu):
    return {"config": {"run_dir": f"/r/{cpu_or_gpu}"}, "env": {"device_type": cpu_or_gpu, "device_name": "x"},
            "experiments": {"train": {"phases": {"step": {"median_ms": step_ms}},
                                      "energy": {"joules_per_token": jpt, "tokens_per_kwh": tpk}}}}


def test_compare_shows_the_energy_ratio_beside_the_speed_ratio():
    from gpt2_lightning.report.compare import format_comparison
    from gpt2_lightning.report.results import compare

    runs = [_run(4000.0, 0.2, 1.8e7, "cpu"), _run(100.0, 0.004, 9e8, "gpu")]
    rows = {r["label"].strip(): r for r in compare(runs)}
    assert rows["train: step"]["speedups"] == [1.0, 40.0]
    assert rows["train: J/token"]["values"] == [0.2, 0.004] and rows["train: J/token"]["speedups"][1] == 50.0
    assert rows["train: tokens/kWh"]["speedups"][1] == 50.0
    table = format_comparison(["cpu", "gpu"], list(rows.values()), runs)
    line = next(x for x in table.splitlines() if x.startswith("train: J/token"))
    assert line.split()[2:] == ["200", "mJ", "4", "mJ", "50.0x"]  # one reading per run: no spread, no judgement


def test_comparison_prints_each_runs_time_to_train(tmp_path):
    from gpt2_lightning.report.compare import write_comparison

    runs = [_run(4000.0, 0.2, 1.8e7, "cpu"), _run(100.0, 0.004, 9e8, "gpu")]
    runs[0]["experiments"]["train"]["projection"] = {"target_tokens": 10**10, "hours": 127 * 24}
    runs[1]["experiments"]["train"]["projection"] = {"target_tokens": 10**10, "hours": 9.1}
    table, files = write_comparison(runs, ["cpu (x)", "gpu (x)"], tmp_path)
    assert "time to train 10B tokens: cpu 127 days, gpu 9.1 h" in table
    assert "time to train 10B tokens: cpu 127 days, gpu 9.1 h" in files[0].read_text()


def test_sweep_has_a_joules_per_token_column_and_panel_when_measured(tmp_path):
    from gpt2_lightning.profile.sweep import format_sweep, sweep_rows, write_sweep

    runs = [(b, {"experiments": {"train": {"phases": {"step": {"median_ms": 10.0 * b}},
                                           "energy": {"joules_per_token": 0.001 * b}}}}) for b in (1, 2)]
    rows = sweep_rows("batch_size", runs)
    assert [r["train J/token"] for r in rows] == [0.001, 0.002]
    assert "train J/token" in format_sweep("batch_size", rows)
    with mock.patch("gpt2_lightning.report.plots.plt.subplots", wraps=__import__("matplotlib.pyplot").pyplot.subplots) as sp:
        write_sweep("batch_size", runs, tmp_path)
    assert sp.call_args.args[:2] == (1, 2)  # step time and J/token: panels with no value at all are left out
    unmeasured = [(b, {"experiments": {"train": {"phases": {"step": {"median_ms": 1.0}}}}}) for b in (1, 2)]
    with mock.patch("gpt2_lightning.report.plots.plt.subplots", wraps=__import__("matplotlib.pyplot").pyplot.subplots) as sp:
        write_sweep("batch_size", unmeasured, tmp_path)
    assert sp.call_args.args[:2] == (1, 1)
