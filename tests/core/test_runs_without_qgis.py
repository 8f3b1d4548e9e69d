"""The core never imports QGIS, and a run of tests/core alone starts no QGIS and writes nothing
into the checkout."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# What a run may leave in a checkout and .gitignore hides: none of it may appear.
_LEFT_BY_RUNS = (".git", ".venv", ".qgis-settings", ".hypothesis", ".ruff_cache", ".pytest_cache",
                 "__pycache__", "demo-output", "dist", "work")
# A small core test file that also runs Hypothesis (which keeps a database and caches).
_CORE_TESTS = "tests/core/calibration/test_mtl.py"


def test_a_core_run_imports_no_qgis_and_writes_nothing_into_the_checkout(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT, checkout, ignore=shutil.ignore_patterns(*_LEFT_BY_RUNS))
    before = sorted(path.relative_to(checkout) for path in checkout.rglob("*"))
    # As `make test` runs it, without what this run's own set-up put in the environment.
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("QGIS_", "HYPOTHESIS_"))}
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    code = ("import sys, pytest\n"
            f"status = pytest.main(['-q', {_CORE_TESTS!r}])\n"
            "print('QGIS modules:', sorted(m for m in sys.modules if m.split('.')[0] == 'qgis'))\n"
            "sys.exit(int(status))\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=environment,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert " passed" in completed.stdout and "QGIS modules: []" in completed.stdout, \
        completed.stdout
    assert sorted(path.relative_to(checkout) for path in checkout.rglob("*")) == before


def test_core_never_imports_qgis():
    modules = sorted((REPO_ROOT / "core").rglob("*.py"))
    assert len(modules) > 20
    for module in modules:
        text = module.read_text(encoding="utf-8")
        assert "import qgis" not in text and "from qgis" not in text, module
