"""torch.profiler's C++ lines stay off the console unless --verbose; everything else written meanwhile still shows."""

import os
import subprocess
import sys

from tests.conftest import ROOT

USDT = "USDT:2026-11-27 04:36:26 4144:4144 SyncActivityProfilerHandler.cpp:52] profiler_start\n"
COLLECTION = "[W1127 04:36:37.448210720 collection.cpp:664] Warning: Optimizer.step#AdamW.step (function operator())\n"


def test_noise_patterns():
    from gpt2_lightning.profile.quiet import is_profiler_noise

    assert is_profiler_noise(USDT) and is_profiler_noise(COLLECTION)
    assert is_profiler_noise("STAGE:2024-01-01 10:00:00 1:1 ActivityProfilerController.cpp:312] Completed Stage\n")
    assert not is_profiler_noise("[W1127 04:36:37.4 ProcessGroupNCCL.cpp:100] Warning: something that matters\n")
    assert not is_profiler_noise("UserWarning: a Python warning\n")
    assert not is_profiler_noise("[train] step 3/10 · 1.80 s/step · ETA 13 s\n")


SCRIPT = """
import os, sys
from gpt2_lightning.profile.quiet import profiler_messages_hidden
with profiler_messages_hidden(sys.argv[1] == "on") as console:
    os.write(2, {usdt!r}.encode())
    print("a Python warning", file=sys.stderr)
    os.write(2, {collection!r}.encode())
    console.write("progress line\\n")
print("after", file=sys.stderr)
""".format(usdt=USDT, collection=COLLECTION)


def _run(mode):
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT}, timeout=60)


def test_hidden_lines_are_dropped_and_the_rest_passed_on():
    proc = _run("on")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "progress line\na Python warning\nafter\n"


def test_disabled_passes_everything_through():
    proc = _run("off")
    assert proc.stderr == USDT + "a Python warning\n" + COLLECTION + "progress line\nafter\n"


def test_a_profile_run_prints_no_lightning_banners_unless_verbose(tmp_path):
    """Lightning's import sets its loggers to INFO: quieting them before that import (the command lines import it
    lazily) was undone, and every Trainer printed "GPU available: ..." and a tip."""
    args = [sys.executable, "scripts/profile.py", "--accelerator", "cpu", "--model", "tiny", "--batch-size", "1",
            "--seq-len", "8", "--warmup-steps", "1", "--steps", "2", "--experiments", "train", "--no-energy",
            "--out", str(tmp_path)]
    quiet = subprocess.run(args + ["--run-name", "quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "GPU available" not in quiet.stdout + quiet.stderr
    verbose = subprocess.run(args + ["--run-name", "verbose", "--verbose"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert verbose.returncode == 0 and "GPU available" in verbose.stdout + verbose.stderr
