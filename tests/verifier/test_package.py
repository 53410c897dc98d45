"""Packaging rules: `import rlvr.verifier` is light, imports no other rlvr subpackage (but the reward
shaping's two, when called), files stay small."""

from __future__ import annotations

import ast
import subprocess
import sys

from .helpers import ROOT

PKG = ROOT / "rlvr" / "verifier"


def test_import_is_light():
    code = (
        "import sys, rlvr.verifier\n"
        "names = ('sympy', 'math_verify', 'ray', 'fastapi', 'httpx', 'uvicorn', 'torch')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout}"


# the one exception: the training reward (`shaped_rewards`, `reward_settings`) adds DAPO's overlong penalty
# (rlvr.algorithms) with the cache length of the run's config (rlvr.config), imported when called, so
# the verifier itself (pool, HTTP service) stays free of them
REWARD_IMPORTS = {"rewards.py": ("rlvr.algorithms", "rlvr.config")}


def _allowed(path, node, name: str) -> bool:
    if name.startswith("rlvr.verifier") or not name.startswith("rlvr"):
        return True
    return name in REWARD_IMPORTS.get(path.name, ()) and node.col_offset > 0  # inside a function


def test_no_imports_from_other_rlvr_subpackages():
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level >= 2:
                    raise AssertionError(f"{path.name}: relative import above rlvr.verifier")
                mod = node.module or ""
                if node.level == 0 and not _allowed(path, node, mod):
                    raise AssertionError(f"{path.name}: imports {mod}")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if not _allowed(path, node, alias.name):
                        raise AssertionError(f"{path.name}: imports {alias.name}")


def test_files_are_small():
    for path in list(PKG.rglob("*.py")) + list((ROOT / "tests" / "verifier").glob("*.py")):
        assert len(path.read_text().splitlines()) <= 500, path
