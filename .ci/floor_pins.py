"""Print a pip constraints file pinning every runtime dependency of pyproject.toml to its declared floor.

    python3 .ci/floor_pins.py [TORCH_VERSION] > floors.txt

``name>=X`` becomes ``name==X``; torch is pinned to TORCH_VERSION instead (the build CI can install, default
2.13.0: older torch wheels are not on CI's machine). A dependency without a ``>=`` floor is an error: a floor that is
not declared cannot be checked.
"""

import re
import sys
import tomllib
from pathlib import Path


def floor_pins(pyproject: Path, torch_version: str) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?", dep.split(";")[0])
        if not match:
            raise SystemExit(f"floor_pins.py: {dep!r} declares no '>=' floor")
        name, floor = match.group(1), match.group(2)
        pins.append(f"{name}=={torch_version if name == 'torch' else floor}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(floor_pins(root / "pyproject.toml", sys.argv[1] if len(sys.argv) > 1 else "2.13.0")))
