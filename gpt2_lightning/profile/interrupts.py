"""Stopping a run on SIGINT / SIGTERM without losing what it measured.

The handler raises ``RunInterrupted`` where the main thread happens to be, unless that is inside a finaliser
(``__del__``), where Python would print the exception and carry on. Either way it remembers the signal, and
``check()`` (run between builds and experiments, and by ``RaiseOnSignal`` at every batch) raises it at a point where
it cannot be swallowed.
"""

from __future__ import annotations

import contextlib
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
        _received = signum
        if not _in_finalizer(frame):  # there, a raise would be printed and dropped; check() raises it soon after
            raise RunInterrupted(signum)

    _received = None
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _received = None


def _in_finalizer(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
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
