"""Real tokens: a padded dict batch counts its attention_mask's sum, in ThroughputCallback, EnergyCallback and the
function the study calls; B x T only without a mask; length_fn still overrides."""

from unittest import mock

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from callbacks import EnergyCallback, PhaseTimingCallback, ThroughputCallback
from callbacks.tokens import SOURCES as TOKEN_SOURCES
from callbacks.tokens import token_source, tokens_in_batch
from tests.callbacks.test_energy import ScriptedMeter
from tests.conftest import requires_cuda
from tests.helpers import RecordingLogger, ScriptedClock, trainer

B, T = 4, 64
REAL = (64, 32, 16, 16)  # real tokens of each row, the rest padding: 128 of 256, half the batch
REAL_PER_BATCH = 64 + 32 + 16 + 16


class _Padded(Dataset):
    """Hugging Face-style batches: input_ids and attention_mask, each row padded on the right after REAL[i]."""

    def __len__(self) -> int:
        return 1000

    def __getitem__(self, i: int):
        mask = torch.zeros(B, T, dtype=torch.long)
        for row, n in enumerate(REAL):
            mask[row, :n] = 1
        return {"input_ids": torch.randint(0, 100, (B, T)), "attention_mask": mask}


class _Tok(L.LightningModule):
    """Each step spends `step_ms` on the scripted clock."""

    def __init__(self, spend, step_ms: float) -> None:
        super().__init__()
        self.spend, self.step_ms = spend, step_ms
        self.emb = torch.nn.Embedding(100, 4)

    def training_step(self, batch, batch_idx):
        self.spend(self.step_ms)
        return (self.emb(batch["input_ids"]) * batch["attention_mask"][..., None]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_half_padded_dict_batch_counts_its_real_tokens():
    """4 x 64 positions, 128 of them real (by hand: 64 + 32 + 16 + 16): 128 tokens per 20 ms step is 6,400 tokens/s,
    not the 12,800 that B x T would give."""
    clock = ScriptedClock()
    timing = PhaseTimingCallback(warmup_steps=1)
    throughput = ThroughputCallback(timing)
    with mock.patch("time.perf_counter", clock):
        trainer([timing, throughput], max_steps=4, logger=RecordingLogger()).fit(
            _Tok(clock.advance, 20.0), DataLoader(_Padded(), batch_size=None))
    assert [r.tokens for r in timing.counted("train")] == [REAL_PER_BATCH] * 3
    summary = throughput.summary()
    assert summary["tokens_per_sec"] == pytest.approx(6400.0, rel=1e-9)  # 128 / 0.020 s
    assert summary["tokens_from"] == "attention_mask"
    assert summary["tokens_note"] == "tokens: non-padding, from attention_mask"


def test_the_rule_for_other_code_and_its_source():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    ids = torch.randint(0, 100, (2, 4))
    assert tokens_in_batch({"input_ids": ids, "attention_mask": mask}) == 4
    assert token_source({"input_ids": ids, "attention_mask": mask}) == "attention_mask"
    assert tokens_in_batch({"input_ids": ids}) == 8 and token_source({"input_ids": ids}) == "shape"
    assert tokens_in_batch((ids, ids)) == 8 and token_source(ids) == "shape"
    assert tokens_in_batch(torch.randn(2, 4)) is None and token_source(torch.randn(2, 4)) is None  # features
    assert tokens_in_batch({"input_ids": ids, "attention_mask": mask}, length_fn=lambda b: 7) == 7  # user overrides
    assert token_source(ids, length_fn=len) == "length_fn"
    assert TOKEN_SOURCES["shape"].startswith("tokens: B x T")


def test_a_hugging_face_batch_encoding_counts_its_mask():
    """Hugging Face tokenizers return a BatchEncoding (a UserDict, not a dict): its mask is found too."""
    from transformers import BatchEncoding

    batch = BatchEncoding({"input_ids": torch.randint(0, 100, (2, 5)),
                           "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])})
    assert tokens_in_batch(batch) == 7 and token_source(batch) == "attention_mask"


def test_energy_per_token_counts_real_tokens():
    """A scripted 200 W over 16 steps of 1/8 s: 400 J for 16 x 128 real tokens (not 16 x 256)."""
    clock = ScriptedClock()
    energy = EnergyCallback(warmup_steps=2, counted_steps=16, meter=ScriptedMeter(clock, watts=200.0), clock=clock)
    with mock.patch("time.perf_counter", clock):
        trainer([energy, PhaseTimingCallback(warmup_steps=2, counted_steps=16)], max_steps=1000,
                logger=RecordingLogger()).fit(_Tok(clock.advance, 125.0), DataLoader(_Padded(), batch_size=None))
    r = energy.result
    assert r["window_steps"] == 16 and r["joules"] == 400.0
    assert r["window_tokens"] == 16 * REAL_PER_BATCH == 2048
    assert r["joules_per_token"] == 400.0 / 2048


@requires_cuda
@pytest.mark.gpu
def test_gpu_mask_sums_never_synchronise():
    """On a GPU the mask's sum is a device value: counted without any host-device sync inside the counted steps (its
    copy to the host is read once the timer knows the step finished), and the count is still the real tokens."""
    from tests.callbacks.test_no_sync import SyncsAreErrors

    timing = PhaseTimingCallback(warmup_steps=2)
    throughput = ThroughputCallback(timing)
    guard = SyncsAreErrors(first=2, last=9)
    try:
        trainer([timing, throughput, guard], accelerator="gpu", max_steps=10).fit(
            _Tok(lambda ms: None, 0.0), DataLoader(_Padded(), batch_size=None))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert guard.steps_checked == 8
    assert [r.tokens for r in timing.counted("train")] == [REAL_PER_BATCH] * 8
    assert throughput.summary()["tokens_from"] == "attention_mask"


def test_console_and_report_say_the_tokens_leave_padding_out():
    from gpt2_lightning.report.render import format_summary, render_report

    thr = {"tokens_per_sec": 6400.0, "tflops": None, "mfu_pct": None, "tokens_from": "attention_mask",
           "tokens_note": TOKEN_SOURCES["attention_mask"]}
    data = {"schema_version": 1, "env": {}, "config": {"accelerator": "cpu"},
            "experiments": {"train": {"phases": {}, "throughput": thr, "memory": {}}}}
    assert "6.40k tokens/s (tokens: non-padding, from attention_mask)" in format_summary(data)
    assert "6.40k tokens/s (tokens: non-padding, from attention_mask)" in render_report(data, {})


def test_a_batch_is_walked_once_per_count():
    """count_batch finds the first tensor once and hands it on (it walked the batch three times: review item 14)."""
    import callbacks.step_records as step_records
    import callbacks.tokens as tokens_module

    walk = mock.Mock(wraps=tokens_module.first_tensor)
    with mock.patch.object(step_records, "first_tensor", walk), mock.patch.object(tokens_module, "first_tensor", walk):
        count = step_records.count_batch(torch.randint(0, 50, (2, 4)))
    assert walk.call_count == 1
    assert (count.samples, count.tokens, count.shape, count.source) == (2, 8, (2, 4), "shape")
