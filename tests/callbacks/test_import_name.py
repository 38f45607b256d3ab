"""The callbacks import under a name no user's project holds, from a project that has its own callbacks.py."""

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

USER_SCRIPT = textwrap.dedent("""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from callbacks import MyCallback  # the user's own callbacks.py, found first from the project's directory
    from lightning_phase_callbacks import ModuleRangesCallback, PhaseTimingCallback, ThroughputCallback
    import lightning_phase_callbacks.timing as timing

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)

        def training_step(self, batch, batch_idx):
            return self.emb(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    timing_cb = PhaseTimingCallback(warmup_steps=1)
    trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[MyCallback(), timing_cb, ThroughputCallback(timing_cb), ModuleRangesCallback()])
    trainer.fit(Net(), DataLoader(TensorDataset(torch.randint(0, 10, (12, 5))), batch_size=3))
    print("user's:", MyCallback.__module__, "timing from:", timing.__file__, "steps:", timing_cb.summary()["step"]["n"])
""")


def test_callbacks_import_beside_a_users_own_callbacks_py(tmp_path):
    (tmp_path / "callbacks.py").write_text("import lightning as L\n\nclass MyCallback(L.Callback):\n    pass\n")
    (tmp_path / "train.py").write_text(USER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the project on the path, as an install would put it
    out = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "user's: callbacks timing from: " + os.path.join(ROOT, "callbacks", "timing.py") + " steps: 2" in out.stdout


def test_the_old_name_keeps_working_and_exports_module_ranges():
    import callbacks
    from callbacks import ModuleRangesCallback, PhaseTimingCallback
    from callbacks.module_ranges import ModuleRangesCallback as direct
    from callbacks.phase_timing import PhaseTimingCallback as timing_direct

    assert ModuleRangesCallback is direct and PhaseTimingCallback is timing_direct
    assert "ModuleRangesCallback" in callbacks.__all__
