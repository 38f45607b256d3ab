"""The README and the docs pages stay true to the code: every `scripts/*.py` command they show parses with its flags
(argparse only: nothing runs), and every relative link points at a file, and its #anchor at a heading, that exists."""

import argparse
import contextlib
import io
import re
import runpy
import shlex
import sys
import types
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import ROOT

ROOT = Path(ROOT)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SCRIPT = re.compile(r"(?:^|\s)(?:python3?|torchrun\s[^#]*?)\s+scripts/(\w+)\.py\b")
STOP = {"|", ">", ">>", "&&", ";", "2>", "&", "||"}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return re.findall(r"\]\(([^)\s]+)\)", text)


def commands(page: Path) -> list[tuple[str, list[str]]]:
    """(script, its arguments) for every command that runs a scripts/*.py in a code block or a code span."""
    text = page.read_text(encoding="utf-8")
    candidates = []
    for block in FENCE.findall(text):
        block = block.replace("\\\n", " ")
        variables = dict(re.findall(r"""(?:^|[;\s])([A-Z_]+)=("[^"]*"|\S+)""", block, re.M))
        for line in block.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for name, value in variables.items():
                line = line.replace(f'"${name}"', value).replace(f"${name}", value.strip('"'))
            candidates.append(line)
    candidates += [span for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)) if span.startswith("python ")]
    found = []
    for line in candidates:
        match = SCRIPT.search(line)
        if not match:
            continue
        rest = re.split(r"\s#", line[match.end():], maxsplit=1)[0].replace(")", " ) ")
        words = []
        for word in shlex.split(rest):
            if word in STOP or word == ")" or word.startswith((">", "2>", "|", "&")):
                break
            words.append(word)
        found.append((match.group(1), words))
    return found


def _all_commands():
    return [(page.relative_to(ROOT).as_posix(), script, args) for page in PAGES for script, args in commands(page)]


class Parsed(Exception):
    pass


def test_the_pages_show_commands_and_the_readme_is_short():
    scripts = {script for _, script, _ in _all_commands()}
    assert {"profile", "compare", "history", "train", "analyze_trace", "prepare_data"} <= scripts, scripts
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    # a newcomer's first command runs on a CPU in a minute or two
    first = commands(ROOT / "README.md")[0]
    assert first[0] == "profile" and "cpu" in first[1] and "tiny" in first[1], first


def parse_error(script: str, args: list[str]) -> str | None:
    """Why scripts/<script>.py does not take these arguments, or None. argparse alone judges them: parse_args is
    stopped once it has parsed, so nothing runs."""
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, argv=None, namespace=None):
        raise Parsed(real(self, argv, namespace))

    # scripts import _bootstrap (the repository on sys.path, scripts/ off it: scripts/profile.py would shadow the
    # standard library's profile); the tests already run from the repository root, so an empty one stands in (and
    # stays: sys.modules is not restored as a whole, which would unload torch's modules and load them twice)
    sys.modules.setdefault("_bootstrap", types.ModuleType("_bootstrap"))
    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop), \
            mock.patch.object(sys, "argv", [f"scripts/{script}.py", *args]), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            runpy.run_path(str(ROOT / "scripts" / f"{script}.py"), run_name="__main__")
        except Parsed:
            return None
        except SystemExit as e:
            if e.code == 0 and {"--help", "-h"} & set(args):
                return None  # --help: argparse printed the help and stopped
            return f"exit {e.code}: {err.getvalue().strip()}"
    return "it ran without parsing its arguments"


@pytest.mark.parametrize("page, script, args", _all_commands(), ids=lambda x: x if isinstance(x, str) else None)
def test_every_command_shown_parses(page, script, args):
    error = parse_error(script, args)
    assert error is None, f"{page}: scripts/{script}.py {shlex.join(args)}: {error}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_exists(page):
    dead = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            dead.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            dead.append(target)
    assert not dead, f"{page.name}: dead links {dead}"


def test_the_checks_catch_a_dead_link_and_a_bad_flag(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Top\n\n[a](#top) [b](#nowhere) [c](missing.md)\n\n```bash\n"
                    "python scripts/profile.py --accelerator cpu --stepz 3   # a typo\n```\n", encoding="utf-8")
    assert links(page) == ["#top", "#nowhere", "missing.md"] and anchors(page) == {"top"}
    assert commands(page) == [("profile", ["--accelerator", "cpu", "--stepz", "3"])]
    assert "did you mean --steps" in parse_error("profile", ["--accelerator", "cpu", "--stepz", "3"])
    assert parse_error("compare", ["runs/a", "runs/b", "--fail-if-slower", "x"]).startswith("exit 2")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_page_that_shows_the_callbacks_import_gives_the_collision_free_name(page):
    """`from callbacks import ...` finds a user's own callbacks.py first: a page that shows it also shows
    `lightning_phase_callbacks`, the name that always finds these callbacks (README and docs/training.md do)."""
    text = page.read_text(encoding="utf-8")
    if "from callbacks import" in text or page.name in ("README.md", "training.md"):
        assert "from lightning_phase_callbacks import" in text, page.name
