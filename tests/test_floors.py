"""The dependency floors CI checks (.ci/floors) are pyproject.toml's own: every runtime dependency, pinned to its floor."""

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _floor_pins():
    spec = importlib.util.spec_from_file_location("floor_pins", Path(ROOT) / ".ci" / "floor_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.floor_pins


def test_every_runtime_dependency_is_pinned_to_its_floor():
    pins = dict(p.split("==") for p in _floor_pins()(Path(ROOT) / "pyproject.toml", "2.13.0"))
    assert pins["torch"] == "2.13.0"  # the build CI has, whatever the floor
    # the floors that work (lightning 2.5.x lacks Trainer(enable_autolog_hparams); older matplotlib and tensorboard
    # break on numpy 2): raising or lowering one means checking it with .ci/floors
    assert pins["lightning"] == "2.6.0" and pins["tensorboard"] == "2.17.1" and pins["matplotlib"] == "3.8.4"
    assert set(pins) == {"torch", "lightning", "torchmetrics", "tensorboard", "matplotlib", "numpy", "nvidia-ml-py"}


def test_a_dependency_without_a_floor_is_refused(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["torch>=2.11", "matplotlib"]\n')
    with pytest.raises(SystemExit, match="matplotlib"):
        _floor_pins()(pyproject, "2.13.0")
