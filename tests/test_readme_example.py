"""docs/training.md's "Timing your own training" example runs as written and prints the figures it promises."""

import contextlib
import io
import re
from pathlib import Path

from tests.conftest import ROOT


def test_own_training_example_runs(tmp_path, monkeypatch):
    text = (Path(ROOT) / "docs" / "training.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- readme-example: own-training -->\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/training.md", "exec"), {})
    printed = out.getvalue()
    for phase in ("data", "forward", "backward", "optimizer", "step", "checkpoint", "validation"):
        assert f"'{phase}'" in printed, printed
    assert "steps_pct" in printed
    assert sorted(p.name for p in (tmp_path / "runs" / "own" / "ckpt").iterdir()) == [
        "epoch=0-step=12.ckpt", "epoch=0-step=6.ckpt"]
