"""The package's architecture, checked: which part may import which, no import circles, and a start-up that loads
neither torch nor Lightning for --help or a refused flag."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = ("torch", "lightning", "torchmetrics", "matplotlib", "tensorboard", "PIL")


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("gpt2_lightning", "callbacks"):
        for path in sorted(Path(ROOT, top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path, module_level_only: bool) -> set[str]:
    """What a file imports (absolute names; relative imports, as callbacks/ has, resolved against the file's
    package), at module level only or anywhere in it (inside functions too)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]  # of a module, and of a package's __init__ alike
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = (n for stmt in tree.body for n in ast.walk(stmt) if not (
        module_level_only and isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, (base, node.module)))
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES}
    return names


def _internal(names: set[str]) -> set[str]:
    return {n for n in names if n in MODULES and n not in ("gpt2_lightning", "callbacks")}


def _graph(module_level_only: bool) -> dict[str, set[str]]:
    return {m: _internal(_imports(p, module_level_only)) for m, p in MODULES.items()}


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _in(package: str) -> list[str]:
    return [m for m in MODULES if m == package or m.startswith(package + ".")]


def test_the_layout_has_its_rooms():
    for package in ("analysis", "profile", "report", "train"):
        init = Path(ROOT, "gpt2_lightning", package, "__init__.py")
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc, f"{package}/__init__.py says what lives there and what it may import"
    for core in ("config", "model", "module", "data", "flops"):
        assert f"gpt2_lightning.{core}" in MODULES


def test_analysis_imports_nothing_that_imports_torch():
    graph = _graph(module_level_only=False)  # inside functions too: the analysis never needs torch
    for module in _in("gpt2_lightning.analysis"):
        reached = {module} | _reachable(module, graph)
        assert all(m.startswith(("gpt2_lightning.analysis", "gpt2_lightning.cli_args")) for m in reached), (
            module, sorted(reached))
        heavy = {n for m in reached for n in _imports(MODULES[m], False) if n.split(".")[0] in HEAVY}
        assert not heavy, (module, heavy)


def test_report_never_imports_profile_or_train_and_callbacks_nothing_of_the_package():
    graph = _graph(module_level_only=False)
    for module in _in("gpt2_lightning.report"):
        bad = {m for m in graph[module] if m.startswith(("gpt2_lightning.profile", "gpt2_lightning.train"))}
        assert not bad, (module, bad)
    for module in _in("callbacks"):
        assert not {m for m in graph[module] if m.startswith("gpt2_lightning")}, module
    for module in _in("gpt2_lightning.profile"):
        assert not {m for m in graph[module] if m.startswith("gpt2_lightning.train")}, module


@pytest.mark.parametrize("module_level_only", [True, False], ids=["module level", "with deferred imports"])
def test_no_import_circles(module_level_only):
    graph = _graph(module_level_only)
    circles = [m for m in graph if m in _reachable(m, graph)]
    assert not circles, circles


COMMANDS = [
    ["scripts/profile.py", "--help"], ["scripts/train.py", "--help"], ["scripts/compare.py", "--help"],
    ["scripts/prepare_data.py", "--help"], ["scripts/analyze_trace.py", "--help"], ["scripts/history.py", "--help"],
    ["scripts/profile.py", "--model", "nope"], ["scripts/profile.py", "--stpes", "3"],
    ["scripts/profile.py", "--accelerator", "cpu", "--strategy", "foo"],
    ["scripts/profile.py", "--accelerator", "cpu", "--devices", "0,1"],
    ["scripts/profile.py", "--accelerator", "cpu", "--precision", "16-mixed"],
    ["scripts/profile.py", "--data", "/nonexistent"], ["scripts/train.py", "--data", "/nonexistent"],
    ["scripts/train.py", "--model", "tiny", "--data", "/nonexistent", "--resume", "/nonexistent.ckpt"],
    ["scripts/compare.py", "/nonexistent/a", "/nonexistent/b"], ["scripts/analyze_trace.py", "/nonexistent"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_and_refusals_load_neither_torch_nor_lightning(argv):
    """-X importtime lists every module the command imported: none of the heavy ones (seconds of start-up)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == (0 if "--help" in argv else 2), proc.stderr[-500:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    if "--help" not in argv:
        refusal = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
        assert len(refusal) == 1 and ": error: " in refusal[0], refusal
