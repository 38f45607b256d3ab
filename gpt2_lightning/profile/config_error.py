"""ConfigError: a setting that cannot work, said in one line that names the flag (the CLIs exit 2 with it)."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A setting that cannot work; the message names the flag, the value and what is valid."""

    def __init__(self, flag: str, value: Any, valid: str) -> None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # as typed: --price-per-hour -1, not -1.0 (argparse made a float of it)
        flag = f"--{flag.replace('_', '-')}"
        # a switch (--activation-checkpointing) is named alone: "True" is not what anyone typed
        super().__init__(f"{flag}: {valid}" if isinstance(value, bool) else f"{flag} {value}: {valid}")
