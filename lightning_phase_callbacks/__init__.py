"""The callbacks of ``callbacks/`` under a name that no user's project holds.

``from callbacks import PhaseTimingCallback`` finds a user's own ``callbacks.py`` first when the user runs from their
project; ``from lightning_phase_callbacks import PhaseTimingCallback`` always finds these. This package is the
``callbacks`` directory itself under a second name: its modules load from there (``lightning_phase_callbacks.timing``
is ``callbacks/timing.py``), and its public names are those of ``callbacks/__init__.py``.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent / "callbacks")]  # submodules load from callbacks/
_init = Path(__path__[0]) / "__init__.py"
_doc = __doc__
exec(compile(_init.read_text(encoding="utf-8"), str(_init), "exec"))  # the lazy public names, under this name
__doc__ = _doc
del _init, _doc
