"""The CLIs a new user meets: usage names the command as called, every flag explains itself and its default,
a typo gets the nearest flag, train.py warns about a warm-up as long as the run, and its progress bar counts steps."""

import re
import sys

import pytest


@pytest.mark.parametrize("argv0, expected", [
    ("/venv/bin/gpt2-profile", "gpt2-profile"),
    ("/venv/bin/gpt2-train", "gpt2-train"),
    ("scripts/profile.py", "scripts/profile.py"),
    ("./scripts/train.py", "./scripts/train.py"),
    ("/usr/lib/python3/site-packages/pytest/__main__.py", "DEFAULT"),
    ("", "DEFAULT"),
])
def test_usage_names_the_command_as_called(monkeypatch, argv0, expected):
    from gpt2_lightning.profile.cli import build_parser
    from gpt2_lightning.cli_args import prog_name

    monkeypatch.setattr(sys, "argv", [argv0])
    assert prog_name("DEFAULT") == expected
    if expected != "DEFAULT":
        assert build_parser().format_usage().startswith(f"usage: {expected} ")


def _option_helps(parser):
    return {a.option_strings[-1]: a.help or "" for a in parser._actions if a.option_strings and a.dest != "help"}


@pytest.mark.parametrize("which", ["profile", "train"])
def test_every_flag_has_help_and_shows_its_default(which):
    from gpt2_lightning.profile import cli
    from gpt2_lightning.train import cli as train_cli

    parser = (cli if which == "profile" else train_cli).build_parser()
    helps = _option_helps(parser)
    assert len(helps) > 20
    assert all(text.strip() for text in helps.values()), [f for f, t in helps.items() if not t.strip()]
    text = parser.format_help().split("options:", 1)[1]
    for flag in helps:
        entry = re.split(rf"\n  {flag}[ \n]", text, maxsplit=1)[1].split("\n  --", 1)[0]
        assert "(default" in entry or "(required)" in entry, (flag, entry)
    unset = [a.option_strings[-1] for a in parser._actions if a.default is None and a.option_strings
             and not a.required and "(default" not in (a.help or "")]
    assert unset == []  # every unset default says what it means, rather than "(default: none)"


def test_train_help_shows_the_defaults_that_were_missing():
    from gpt2_lightning.train.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    for expected in ("--batch-size N sequences per batch (default: 8)", "(default: 256)", "(default: 1337)",
                     "--compile run the model through torch.compile (default: off)", "examples:"):
        assert expected in text, expected


@pytest.mark.parametrize("argv, hint", [
    (["--stpes", "3"], "did you mean --steps for --stpes?"),
    (["--acclerator=cpu"], "did you mean --accelerator for --acclerator?"),
    (["--batchsize", "2"], "did you mean --batch-size for --batchsize?"),
    # a prefix is a typo too: argparse took --step 3 for --steps 3 and --batch 2 for --batch-size 2, silently
    (["--step", "3"], "did you mean --steps for --step?"),
    (["--batch", "2"], "did you mean --batch-size for --batch?"),
])
def test_a_typo_gets_the_nearest_flag(capsys, argv, hint):
    from gpt2_lightning.profile.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments" in err[0] and hint in err[0], err


def test_nothing_near_gets_no_guess():
    import argparse

    from gpt2_lightning.cli_args import with_suggestion

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps")
    assert with_suggestion(parser, "unrecognized arguments: --zzzzzz") == "unrecognized arguments: --zzzzzz"


def test_train_typo_is_one_line_with_a_hint(capsys):
    from gpt2_lightning.train.cli import main

    assert main(["--data", "d", "--max-stpes", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean --max-steps" in err[0]
    assert main(["--data", "d", "--max-step", "5"]) == 2  # a prefix is not taken for the flag
    assert "did you mean --max-steps" in capsys.readouterr().err


@pytest.mark.parametrize("warmup, max_steps, expected", [
    (100, 50, "never reaches --lr 0.001: it stops at 0.0005"),
    (50, 50, "reaches --lr only at the last step and never decays"),
    (10, 50, None),
])
def test_train_warns_when_warm_up_is_as_long_as_the_run(warmup, max_steps, expected):
    from gpt2_lightning.train.cli import parse, warn_schedule

    warning = warn_schedule(parse(["--data", "d", "--lr-warmup-steps", str(warmup), "--max-steps", str(max_steps)])[0])
    if expected is None:
        assert warning is None
    else:
        assert f"warning: --lr-warmup-steps {warmup} >= --max-steps {max_steps}" in warning and expected in warning


def test_train_refusal_is_the_only_line_before_any_warning(tmp_path, capsys):
    """`--data /nope` with a warm-up as long as the run: the refusal alone, not a warning about a run that never
    starts."""
    from gpt2_lightning.train.cli import main

    code = main(["--data", str(tmp_path / "nope"), "--max-steps", "60", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "error:" in err[0] and "warning" not in err[0], err


def test_train_progress_bar_counts_steps():
    from callbacks.progress import StepProgressBar
    from gpt2_lightning.profile.trainers import make_trainer
    from gpt2_lightning.profile.settings import ProfileConfig

    cfg = ProfileConfig(accelerator="cpu", model="tiny")
    with_bar = make_trainer(cfg, [], enable_progress_bar=True, max_steps=10)
    assert isinstance(with_bar.progress_bar_callback, StepProgressBar)
    assert make_trainer(cfg, [], max_steps=10).progress_bar_callback is None


@pytest.mark.parametrize("argv, needle", [
    (["--min-lr", "1", "--lr", "0.001"], "--min-lr 1: must be between 0 and --lr 0.001"),  # was taken: lr rose
    (["--min-lr", "-0.1"], "--min-lr -0.1: must be between 0 and --lr"),
    (["--lr", "nan"], "--lr nan: must be positive"),
])
def test_train_learning_rates_that_make_no_schedule_are_refused(capsys, argv, needle):
    from gpt2_lightning.train.cli import main

    assert main(["--data", "d", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_a_refused_number_reads_as_typed(capsys):
    from gpt2_lightning.profile.cli import main

    assert main(["--price-per-hour", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--price-per-hour -1:" in err and "-1.0" not in err  # argparse made a float of it
    assert main(["--price-per-hour", "-1.5"]) == 2 and "--price-per-hour -1.5:" in capsys.readouterr().err


@pytest.mark.parametrize("accelerators", ["cpu,cpu", "auto,cpu", "cpu,auto", "gpu,cuda", "cpu,"])
def test_an_accelerator_list_names_distinct_devices(capsys, accelerators):
    """auto,cpu on a machine without a GPU compared the CPU with itself; gpu and cuda are one device."""
    from gpt2_lightning.profile.cli import main

    assert main(["--accelerator", accelerators]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a comma list of distinct accelerators" in err[0], err


def test_deepspeed_without_its_package_is_one_line(capsys):
    import importlib.util

    from gpt2_lightning.profile.cli import main

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    assert main(["--accelerator", "gpu", "--strategy", "deepspeed_stage_2"]) == 2  # was Lightning's traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the deepspeed package" in err[0], err
