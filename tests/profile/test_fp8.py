"""--precision fp8: torchao's float8 Linear layers, refused up front where they cannot run."""

import subprocess
import sys

import pytest
import torch

from gpt2_lightning.profile.settings import ProfileConfig
from tests.conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("accelerator", ["cpu", "auto"])
def test_fp8_is_refused_without_a_float8_gpu(tmp_path, accelerator):
    proc = subprocess.run([sys.executable, "scripts/profile.py", "--accelerator", accelerator, "--precision", "fp8",
                           "--model", "tiny", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--precision fp8" in lines[0] and "compute capability 8.9" in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_fp8_trains_under_bf16_autocast_around_float8_linears():
    assert ProfileConfig(precision="fp8").trainer_precision == "bf16-mixed"


def test_float8_conversion_keeps_the_tied_head_in_full_precision():
    pytest.importorskip("torchao")
    from torchao.float8.float8_linear import Float8Linear

    from gpt2_lightning import GPT2LightningModule, GPTConfig

    config = GPTConfig.from_name("tiny")
    module = GPT2LightningModule(config, float8=True)
    module.configure_model()
    model = module.model
    converted = [name for name, m in model.named_modules() if isinstance(m, Float8Linear)]
    assert len(converted) == 4 * config.n_layer  # c_attn, attn c_proj, c_fc, mlp c_proj in every block
    assert type(model.lm_head) is torch.nn.Linear
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied
    plain = GPT2LightningModule(config)
    plain.configure_model()
    assert not any(isinstance(m, Float8Linear) for m in plain.model.modules())
