"""Hints that paste (issue 29): every path in a printed command is quoted as a shell needs it, run names keep to
characters that need no quoting, and a run where nothing was measured prints no empty table header."""

import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_every_command_in_the_footer_pastes_with_a_space_in_the_path(tmp_path):
    from gpt2_lightning.report.next_steps import footer

    run_dir = tmp_path / "my out" / "r1"
    run_dir.mkdir(parents=True)
    for tool in ("profile.py", "train.py"):
        lines = footer(run_dir, tool=tool).splitlines()
        tb = next(line for line in lines if "tensorboard --logdir" in line)
        assert shlex.split(tb.split("#")[0]) == ["tensorboard", "--logdir", str(run_dir)]  # one argument, whole
        if tool == "profile.py":
            cmp_line = next(line for line in lines if "compare.py" in line)
            assert shlex.split(cmp_line.split("#")[0])[2] == str(run_dir)
        else:
            resume = next(line for line in lines if "--resume" in line)
            words = shlex.split(resume.split("#")[0].split("--resume", 1)[1])
            assert words[0] == str(run_dir / "checkpoints" / "last.ckpt")


def test_the_tensorboard_hint_names_what_opens_first():
    from gpt2_lightning.report.next_steps import TENSORBOARD_HINT

    # seen in headless Chromium (docs/reading-results.md): Time Series, throughput/ above time/
    assert "throughput/ then time/" in TENSORBOARD_HINT and "time/ first" not in TENSORBOARD_HINT


@pytest.mark.parametrize("name", ["my run", "résultats", "a;b", "-x", "..", "a/b", "$HOME"])
def test_run_names_that_need_quoting_are_refused_naming_the_allowed_characters(name):
    from gpt2_lightning.profile.settings import ConfigError, ProfileConfig

    with pytest.raises(ConfigError, match=r"letters A-Z a-z, digits, '\.', '_' and '-' only"):
        ProfileConfig(run_name=name)


@pytest.mark.parametrize("name", ["main", "bs8", "cpu-vs-gpu", "run_2.1", "20261204-223841"])
def test_plain_run_names_are_kept(name):
    from gpt2_lightning.profile.settings import ProfileConfig

    assert ProfileConfig(run_name=name).run_name == name


def test_a_refused_run_name_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/profile.py", "--accelerator", "cpu", "--run-name", "my run",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--run-name 'my run'" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_a_run_where_everything_ran_out_of_memory_prints_no_empty_table():
    from gpt2_lightning.report.render import format_summary, markdown_summary

    error = {"error": "train: out of memory with --batch-size 64 --seq-len 1024", "error_type": "out_of_memory"}
    data = {"config": {"model": "gpt2-xl"}, "env": {"device_type": "cpu"}, "experiments": {"train": error}}
    text = format_summary(data)
    assert "median" not in text and "-----" not in text, text
    assert "train: FAILED: train: out of memory" in text
    assert "| experiment | phase |" not in markdown_summary(data)


def test_a_folder_of_runs_names_commands_that_paste(tmp_path):
    from gpt2_lightning.report.run_folders import describe_folder

    folder = tmp_path / "my runs"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        (folder / name / "results.json").write_text("{}")
    text = describe_folder(folder, "compare.py", "history.py")
    trend = text.split("see their trend: ", 1)[1]
    assert shlex.split(trend) == ["history.py", str(folder)]
    pair = text.split("compare two of them (", 1)[1].split(")", 1)[0]
    assert shlex.split(pair) == ["compare.py", str(folder / "a"), str(folder / "b")]
