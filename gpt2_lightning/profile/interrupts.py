"""Stopping a run on SIGINT / SIGTERM without losing what it measured.

The handler raises ``RunInterrupted`` where the main thread happens to be, unless that is somewhere a raise would do
harm: inside a finaliser (``__del__``), where Python would print the exception and carry on, or inside the code of a
queue, a lock or TensorBoard's event writer, where it can leave the writer's thread waiting for a message that never
comes (a SIGTERM landing there hung the run in the logger's ``close``, 1 time in 8, its measured steps unsaved).
Either way it remembers the signal, and ``check()`` (run between builds and experiments, and by ``RaiseOnSignal`` at
every batch) raises it at a point where it cannot be swallowed. A second signal while one waits raises at once,
wherever the main thread is.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

from lightning.pytorch.callbacks import Callback


class RunInterrupted(BaseException):
    """A signal asked the run to stop. BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_received: int | None = None


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into RunInterrupted for the duration (Lightning passes it through its loops)."""
    global _received

    def handler(signum: int, frame: Any) -> None:
        global _received
        waiting, _received = _received is not None, signum
        if waiting or not _unsafe_to_raise(frame):  # else check() raises it at the next batch or experiment
            raise RunInterrupted(signum)

    _received = None
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _received = None


# code whose state a raise in the middle can break for good: a queue's or a lock's bookkeeping, TensorBoard's writer
_UNSAFE_FILES = (f"{os.sep}queue.py", f"{os.sep}threading.py")
_UNSAFE_DIRS = (f"{os.sep}tensorboard{os.sep}", f"{os.sep}tensorboardX{os.sep}",
                f"{os.sep}torch{os.sep}utils{os.sep}tensorboard{os.sep}")


def _unsafe_to_raise(frame: Any) -> bool:
    """Whether the main thread is, at any depth, in a finaliser or in code a raise would leave broken."""
    while frame is not None:
        name = frame.f_code.co_filename
        if frame.f_code.co_name == "__del__" or name.endswith(_UNSAFE_FILES) or any(d in name for d in _UNSAFE_DIRS):
            return True
        frame = frame.f_back
    return False


def check() -> None:
    """Raise RunInterrupted if a signal arrived, even one whose first raise was swallowed."""
    if _received is not None:
        raise RunInterrupted(_received)


class RaiseOnSignal(Callback):
    """Checks for a pending stop signal at every batch boundary."""

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
        check()

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        check()

    def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
        check()

    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        check()

    def on_fit_start(self, *args: Any, **kwargs: Any) -> None:
        check()
