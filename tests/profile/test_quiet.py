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


NOISY_MODULE = '''
import logging
logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so")
logging.getLogger("torch.utils._pytree").warning("<enum 'KernelPreference'> is an Enum subclass ...")
logging.getLogger("my_model").warning("the user's own warning")


class Model:
    def __init__(self, width=1):
        logging.getLogger("torchao").warning("Failed to load a kernel library late, in the constructor")
        if width < 1:
            raise ValueError("width must be positive")
'''


def test_importing_the_users_module_hides_only_the_libraries_warnings_about_themselves(tmp_path, caplog):
    """The walk-through: with torchao installed (the [dev] extra), transformers' import printed 4 lines of torchao and
    torch pytree warnings before the project's own line, even for a bad --module."""
    import logging

    import pytest

    from gpt2_lightning.profile.settings import ConfigError
    from gpt2_lightning.profile.user_classes import build, load_class

    (tmp_path / "noisy_model.py").write_text(NOISY_MODULE)
    (tmp_path / "broken_model.py").write_text("import logging\nraise ImportError('no module named flash_attn')\n")
    caplog.set_level(logging.WARNING)
    cls = load_class("module", f"{tmp_path}/noisy_model.py:Model", object)
    assert [r.getMessage() for r in caplog.records] == ["the user's own warning"]
    with pytest.raises(ConfigError, match="width must be positive"):  # the user's own error still says why
        build("module", cls, {"width": 0})
    with pytest.raises(ConfigError, match="does not import .ImportError: no module named flash_attn"):
        load_class("module", f"{tmp_path}/broken_model.py:Model", object)
    assert [r.getMessage() for r in caplog.records] == ["the user's own warning"]
    assert logging.getLogger("torchao").level == logging.NOTSET  # as it was, once the user's code is loaded
    caplog.clear()
    build("module", cls, {}, verbose=True)  # --verbose: everything
    assert [r.getMessage() for r in caplog.records] == ["Failed to load a kernel library late, in the constructor"]


def test_a_hugging_face_module_refused_is_one_line_with_torchao_installed(tmp_path):
    import importlib.util

    import pytest

    if importlib.util.find_spec("torchao") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("torchao and transformers are what print the noise")
    proc = subprocess.run([sys.executable, "scripts/profile.py", "--module", "examples/hf_llama.py:Nope",
                           "--accelerator", "cpu", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"scripts/profile.py: error: --module examples/hf_llama.py:Nope: "
                                        "examples/hf_llama.py has no 'Nope'"]
