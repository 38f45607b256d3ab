"""A full disk: what cannot be written is one line naming the file, exit 1, and nothing measured is lost.

The stand-in for a full disk raises ENOSPC (OSError errno 28) from ``os.write`` when the file being written matches
a pattern, the way the kernel answers a write on a full filesystem; every other write goes through.
"""

import errno
import json
import os
import re
from pathlib import Path
from unittest import mock

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor's file")

BASE = ["--accelerator", "cpu", "--model", "tiny", "--batch-size", "2", "--seq-len", "32", "--steps", "2",
        "--warmup-steps", "1", "--no-energy"]
_real_write = os.write


def full_disk_for(pattern: str):
    """os.write that raises ENOSPC on files whose path matches ``pattern`` (temp files included)."""

    def write(fd, data):
        if re.search(pattern, os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _real_write(fd, data)

    return write


def test_plots_and_report_on_a_full_disk_are_one_line_each_and_results_survive(tmp_path, capsys):
    from gpt2_lightning.profile import cli

    with mock.patch("os.write", side_effect=full_disk_for(r"\.png|report\.md")):
        code = cli.main([*BASE, "--experiments", "train", "--out", str(tmp_path), "--run-name", "r"])
    err = capsys.readouterr().err
    run = tmp_path / "r"
    assert code == 1  # not a success, not bad input: the contract's "unexpected failure", without a traceback
    assert "Traceback" not in err
    for name in ("phases.png", "per_step.png", "report.md"):
        lines = [line for line in err.splitlines() if f"could not write {run / name}" in line]
        assert len(lines) == 1, (name, err)
        assert "No space left on device" in lines[0] and "results.json holds every figure" in lines[0]
        assert not (run / name).exists()  # never a half file under the final name
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]  # nor a temp file left behind
    data = json.loads((run / "results.json").read_text())
    assert data["status"] == "complete" and data["experiments"]["train"]["phases"]["step"]["n"] == 2


def test_results_json_on_a_full_disk_is_one_line_and_the_figures_are_printed(tmp_path, capsys):
    from gpt2_lightning.profile import cli

    with mock.patch("os.write", side_effect=full_disk_for(r"results\.json")):
        code = cli.main([*BASE, "--experiments", "inference", "--out", str(tmp_path), "--run-name", "r"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "could not write" in line]
    assert lines == [f"profile.py: could not write {tmp_path / 'r' / 'results.json'} (No space left on device); "
                     "its figures are only in the summary printed at the end"]  # once, though results.json is saved after each experiment
    assert "inference   forward" in out  # the measured figures reach the console
    assert not (tmp_path / "r" / "results.json").exists()
