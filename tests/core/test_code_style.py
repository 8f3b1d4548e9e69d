"""The code base stays ruff-clean (rules in pyproject.toml), as the style guide asks."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (make test installs it into .venv)")
    completed = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise",
                                str(REPO_ROOT)],
                               capture_output=True, text=True, cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stdout + completed.stderr
