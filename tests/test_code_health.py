"""The linter and the type checker are part of the test suite, so the README's one test command (what CI
runs) checks them too.  Both come with ``install.sh --dev``; without it these tests are skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from extras import needs

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


@needs("ruff")
def test_ruff_finds_nothing():
    res = _run("ruff", "check", "--no-cache", "src", "tests", "benchmarks")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow  # about 45 s of CPU without a .mypy_cache (a fresh checkout), 2 s with one
@needs("mypy")
def test_mypy_finds_nothing():
    res = _run("mypy", "src/melisma")  # settings: [tool.mypy] in pyproject.toml
    assert res.returncode == 0, res.stdout + res.stderr
