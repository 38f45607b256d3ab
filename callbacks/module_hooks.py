"""Module ranges without Lightning: a named range around every submodule's forward, for any training loop
(``callbacks.module_ranges`` explains the names and puts them on a LightningModule as a callback)."""

from __future__ import annotations

import threading
from typing import Any

import torch

PREFIX = "[pl][module]"


def range_name(qualified_name: str, module: torch.nn.Module) -> str:
    cls = type(module)
    return f"{PREFIX}{cls.__module__}.{cls.__name__}: {qualified_name}"


class ModuleRanges:
    """Forward hooks on every submodule of ``root`` (not ``root`` itself); a context manager.

    Each range is closed by its own module's forward hook, on the thread that opened it: every thread has its own
    stack of open ranges (on a GPU, autograd's device thread reruns checkpointed forwards in backward), and a close
    pairs with the innermost range that module opened, closing any left open above it. The close hook runs even
    when a forward stops early (``always_call=True``): activation checkpointing's recompute stops a forward as soon
    as it has what backward needs, and a forward may raise.
    """

    def __init__(self, root: torch.nn.Module) -> None:
        self.root = root
        self._handles: list[Any] = []
        self._local = threading.local()  # .open: [(module id, record or None)], innermost last (forwards nest)
        self._stacks: list[list[tuple[int, Any]]] = []  # every thread's stack, to close what is left at the end
        self._lock = threading.Lock()

    def _stack(self) -> list[tuple[int, Any]]:
        stack = getattr(self._local, "open", None)
        if stack is None:
            stack = self._local.open = []
            with self._lock:
                self._stacks.append(stack)
        return stack

    def _enter(self, name: str) -> Any:
        def pre_hook(module: torch.nn.Module, args: Any) -> None:
            record = None
            if torch.autograd._profiler_enabled():
                record = torch.profiler.record_function(name)
                record.__enter__()
            self._stack().append((id(module), record))

        return pre_hook

    def _exit(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        stack = self._stack()
        key = id(module)
        if not any(k == key for k, _ in stack):
            return  # opened before the hooks went on, or already closed
        while stack:
            k, record = stack.pop()
            if record is not None:
                record.__exit__(None, None, None)
            if k == key:
                return

    def __enter__(self) -> "ModuleRanges":
        for name, module in self.root.named_modules():
            if name:
                self._handles.append(module.register_forward_pre_hook(self._enter(range_name(name, module))))
                self._handles.append(_close_hook(module, self._exit))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        with self._lock:
            stacks = list(self._stacks)
        for stack in stacks:  # a forward that raised before torch ran its close hooks left its ranges open
            while stack:
                _, record = stack.pop()
                if record is not None:
                    record.__exit__(None, None, None)

    def open_ranges(self) -> int:
        """Ranges open now, on every thread (0 between steps)."""
        with self._lock:
            return sum(len(stack) for stack in self._stacks)


def _close_hook(module: torch.nn.Module, hook: Any) -> Any:
    try:
        return module.register_forward_hook(hook, always_call=True)  # torch >= 2.1
    except TypeError:  # older torch: no always_call; the pairing above still closes what a cut-short forward left
        return module.register_forward_hook(hook)
