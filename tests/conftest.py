"""Shared fixtures: CPU-only by default, the tiny preset, short sequences."""

import os
import sys
import warnings

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _quiet_lightning():
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
        yield


@pytest.fixture
def tiny_config():
    from gpt2_lightning import GPTConfig

    return GPTConfig.from_name("tiny")
