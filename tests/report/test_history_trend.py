"""history.py: runs in the order of their commits' instants (UTC), runs with a planted delay or other settings
marked on history.png, write errors that name the path and --out; and analyze_trace.py on a damaged gzip."""

import gzip
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.report.test_gate import write
from tests.report.test_judgement import BASE, repeated


def nightly(tmp_path, commits):
    for name, (when, factor, config) in commits.items():
        data = repeated([m * factor for m in BASE], **config)
        data["env"]["git"] = {"commit": name * 40, "commit_time": when, "dirty": False}
        write(tmp_path / "nightly" / name, data)
    return tmp_path / "nightly"


def test_history_orders_commits_by_their_instant_in_utc(tmp_path):
    """a was committed at 04:00 UTC on 2 Nov (23:00 in New York on the 1st), b at 01:00 UTC the same day: b first. The
    ISO strings compared as text put a first."""
    from gpt2_lightning.report.history import load_history

    folder = nightly(tmp_path, {"a": ("2026-11-01T23:00:00-05:00", 1.0, {}),
                                "b": ("2026-11-02T01:00:00+00:00", 1.0, {}),
                                "c": ("2026-11-02T06:30:00+02:00", 1.0, {})})  # 04:30 UTC: after a
    runs, skipped = load_history(folder)
    assert [name for name, _ in runs] == ["b", "a", "c"] and skipped == []


def test_history_png_marks_planted_and_different_runs(tmp_path):
    from gpt2_lightning.report.history import history_rows, load_history, tick_labels, write_history

    folder = nightly(tmp_path, {"a": ("2026-11-01T00:00:00+00:00", 1.0, {}),
                                "b": ("2026-11-02T00:00:00+00:00", 1.5, {"add_delay_ms": 40.0}),
                                "c": ("2026-11-03T00:00:00+00:00", 1.0, {"batch_size": 4}),
                                "d": ("2026-11-04T00:00:00+00:00", 1.0, {})})
    rows = history_rows(load_history(folder)[0])
    assert [r["marks"] for r in rows] == [[], ["planted delay"], ["batch size differs"], []]
    assert tick_labels(rows) == ["aaaaaaaaaa", "bbbbbbbbbb\n(!) planted delay", "cccccccccc\n(!) batch size differs",
                                 "dddddddddd"]
    _, files = write_history(folder, tmp_path / "out")
    assert files[1].read_bytes()[:4] == b"\x89PNG"


def run_history(argv, capsys):
    from gpt2_lightning.report.history_cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    return err


def test_history_write_errors_name_the_path_and_out(tmp_path, capsys):
    """Issue: on a read-only folder, "error: cannot write (Operation not permitted)" with no path and no --out."""
    folder = nightly(tmp_path, {"a": ("2026-11-01T00:00:00+00:00", 1.0, {})})
    (folder / "history.png").mkdir()  # what a folder it cannot write into does to the final rename
    err = run_history([str(folder)], capsys)
    assert f"cannot write {folder / 'history.png'}" in err and "pass --out DIR" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = run_history([str(folder), "--out", str(blocker / "sub")], capsys)
    assert f"cannot write {blocker / 'sub'}" in err and "pass another --out DIR" in err


def test_analyze_trace_on_a_gzip_damaged_mid_stream_is_one_line(tmp_path):
    """Issue: a 31-line zlib.error traceback, exit 1. Damaged as a cut-off download or a bad disk would: 256 bytes in
    the middle of the compressed stream overwritten."""
    import subprocess
    import sys

    data = (Path(ROOT) / "tests" / "data" / "h100-gpt2-bf16-b8-train.pt.trace.json.gz").read_bytes()
    mid = len(data) // 2
    bad = tmp_path / "bad.pt.trace.json.gz"
    bad.write_bytes(data[:mid] + b"\xff" * 256 + data[mid + 256:])
    with pytest.raises(Exception) as e:  # the damage this test plants is one zlib itself refuses
        gzip.decompress(bad.read_bytes())
    assert e.type.__module__ == "zlib"
    proc = subprocess.run([sys.executable, "scripts/analyze_trace.py", str(bad)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"scripts/analyze_trace.py: error: {bad}: not a Chrome trace (unreadable: its gzip "
                                   "data is damaged (Error -3 while decompressing data: invalid block type))")
