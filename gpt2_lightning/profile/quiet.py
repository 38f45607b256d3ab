"""Keep torch.profiler's C++ messages, Lightning's banners and tips (``quiet_lightning``), and the warnings that
libraries log while the user's module is imported (``import_noise_hidden``), off the console unless --verbose.

Kineto prints ``USDT:... SyncActivityProfilerHandler.cpp:52] profiler_start`` (and ``profiler_stop``) and the
profiler's event collection warns ``[W... collection.cpp:664] Warning: Optimizer.step#AdamW.step ...``. Both are
written by C++ straight to file descriptor 2, so Python's logging and warnings filters never see them.
``KINETO_LOG_LEVEL=6`` silences the first but not the second, and ``TORCH_CPP_LOG_LEVEL`` is read once, when torch
is loaded, and would silence every C++ warning of the process. So while a profiled stage runs, fd 2 goes to a
temporary file; afterwards everything in it is passed on except lines in those two formats. Nothing else is lost,
only delayed to the end of the stage; progress lines go to the real console through the stream this yields.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import TextIO

# Kineto's own logger: LEVEL:YYYY-MM-DD HH:MM:SS pid:tid File.cpp:line] ...
_KINETO = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \S+\.cpp:\d+\]")
# c10 warnings raised inside the profiler's sources: [W1127 04:36:37.448210720 collection.cpp:664] Warning: ...
_PROFILER_CPP = re.compile(r"^\[[WI]\d{4} \S+ (\S*/)?(collection|profiler_kineto|kineto_shim|profiler_python)\.cpp:\d+\]")


def is_profiler_noise(line: str) -> bool:
    return bool(_KINETO.match(line) or _PROFILER_CPP.match(line))


@contextlib.contextmanager
def profiler_messages_hidden(enabled: bool) -> Iterator[TextIO]:
    """While active, the profiler's C++ lines never reach the console; yields a stream that does (for progress).

    Disabled (--verbose, or no torch.profiler): does nothing and yields sys.stderr.
    """
    if not enabled:
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(2)
    console = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    try:
        yield console
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        console.close()
        captured.seek(0)
        text = captured.read().decode("utf-8", errors="replace")
        captured.close()
        kept = [line for line in text.splitlines(keepends=True) if not is_profiler_noise(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def quiet_lightning(verbose: bool) -> None:
    """Lightning's banners, tips and advice are noise in a profiler's output unless --verbose.

    Call it once the run is sure to start: it loads Lightning, whose ``__init__`` sets its loggers to INFO (set
    before that import, the levels were undone by it and every Trainer printed its banners)."""
    if verbose:
        return
    import lightning.pytorch  # noqa: F401  (first: its import resets the levels set below)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    warnings.filterwarnings("ignore", module=r"torch\.utils\.data")


# Libraries that warn, at import, about themselves rather than about the user's code: torchao (which transformers
# loads when it is installed, as the [dev] extra does) logs "Failed to load .../torchao/_C_mxfp8...so" for each
# kernel library built for another Python or GPU, and registers enums that make torch's pytree warn
# "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by torch.compile ...".
IMPORT_NOISE_LOGGERS = ("torchao", "torch.utils._pytree")


@contextlib.contextmanager
def import_noise_hidden(verbose: bool) -> Iterator[None]:
    """While the user's module is imported or built, the libraries in ``IMPORT_NOISE_LOGGERS`` log errors only (their
    warnings are about themselves). The user's own warnings, their loggers and any exception still show; --verbose
    shows everything."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in IMPORT_NOISE_LOGGERS]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"torchao(\.|$)")
            yield
    finally:
        for lg, level in zip(loggers, saved):
            lg.setLevel(level)
