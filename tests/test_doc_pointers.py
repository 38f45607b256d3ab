"""Every pointer to the README or a docs/ page that the code prints (messages, --help, notes in reports) names a page
and a heading that exist: text moves from the README into docs/ pages, and a pointer left behind sends the reader to
nothing (compare.py said "README: what beyond noise means" after that text moved to docs/comparisons.md)."""

import ast
import re
from pathlib import Path

from tests.conftest import ROOT
from tests.test_docs import anchors, slug

ROOT = Path(ROOT)
SOURCES = [*ROOT.glob("gpt2_lightning/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("callbacks/**/*.py")]
README = re.compile(r"README(?:\.md)?(?:#([\w-]+)|: ([^);.]+))?")
DOCS = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")


def printed_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal in the file that is not a docstring (f-strings' literal parts too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def broken_pointers(path: Path) -> list[str]:
    out = []
    for line, text in printed_strings(path):
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{line}"
        for m in README.finditer(text):
            anchor = m.group(1) or (slug(m.group(2)) if m.group(2) else None)
            if anchor is None:
                out.append(f"{where}: {m.group(0)!r} names no heading")
            elif anchor not in anchors(ROOT / "README.md"):
                out.append(f"{where}: {m.group(0)!r}: README.md has no heading #{anchor}")
        for m in DOCS.finditer(text):
            page = ROOT / "docs" / m.group(1)
            if not page.exists():
                out.append(f"{where}: {m.group(0)!r}: no such page")
            elif m.group(2) and m.group(2) not in anchors(page):
                out.append(f"{where}: {m.group(0)!r}: {page.name} has no heading #{m.group(2)}")
    return out


def test_every_printed_pointer_names_a_page_and_heading_that_exist():
    assert [p for path in sorted(SOURCES) for p in broken_pointers(path)] == []


def test_the_check_catches_a_pointer_left_behind(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('X = "see README: what beyond noise means"\nY = f"{1} (docs/comparisons.md#no-such-heading)"\n'
                     'Z = "as the README says"\nW = "docs/comparisons.md#regression-gate-in-ci"\n', encoding="utf-8")
    found = sorted(broken_pointers(probe))
    assert len(found) == 3
    assert "probe.py:1: 'README: what beyond noise means': README.md has no heading" in found[0]
    assert "probe.py:2: 'docs/comparisons.md#no-such-heading'" in found[1] and "names no heading" in found[2]
