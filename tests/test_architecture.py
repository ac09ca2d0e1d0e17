"""Imports point one way, proven on the code, not promised: import-linter's contracts in pyproject.toml (front ends
over the run façade over Ray over the engine ...; the engine and what it works on never import ray or parallel/)
hold on this tree, and each would catch the import it forbids (a broken copy of the tree is refused)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the package under `root`/src with the repository's contracts."""
    env = {"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(LINT), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=300, env=env)


def test_the_tree_keeps_every_contract():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("engine/driver.py", "from ..parallel import cluster", "Sequential never needs Ray"),
    ("media/download.py", "import ray", "Sequential never needs Ray"),
    ("session_manager.py", "from .outputs import writers", "Layers"),
    ("engine/worker.py", "from ..runs import start_batch", "Layers"),
])
def test_a_forbidden_import_is_caught(tmp_path, module, line, contract):
    shutil.copytree(REPO / "src" / "bulk_transcribe", tmp_path / "src" / "bulk_transcribe",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "src" / "bulk_transcribe" / module
    # Inside a function, as the lazy imports that once hid the engine -> parallel cycle were.
    target.write_text(target.read_text() + f"\n\ndef _sneaky():\n    {line}\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    broken = [chunk for chunk in result.stdout.split("\n\n") if "BROKEN" in chunk]
    assert any(contract in chunk for chunk in broken), result.stdout[-3000:]
