"""README's sample of the first run's last lines is what the run prints: every line of it, none cut short."""

from pathlib import Path

from tests.conftest import ROOT


def test_readmes_next_block_is_the_first_runs_footer(tmp_path, monkeypatch):
    from gpt2_lightning.report.next_steps import footer

    monkeypatch.chdir(tmp_path)
    run_dir = Path("runs") / "first"  # README's first command: --run-name first under the default --out runs
    run_dir.mkdir(parents=True)
    for name in ("report.md", "phases.png", "per_step.png"):  # what that run writes (no modules.png on a CPU)
        (run_dir / name).write_text("")
    printed = footer(run_dir)
    assert printed.count("\n") == 4  # read, next, and three commands
    assert f"```\n{printed}\n```" in (Path(ROOT) / "README.md").read_text()
