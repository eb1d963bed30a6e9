"""Shared fixtures: one smoke study per test session, reused by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def postfit(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the `postfit` CLI as a user would, in a subprocess."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "postfit", *args], capture_output=True, text=True, env=env, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"postfit {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory) -> Path:
    """The built-in smoke study, run once, uninterrupted."""
    out = tmp_path_factory.mktemp("smoke") / "study"
    postfit("run", "smoke", "--out", str(out))
    return out


def pytest_report_header(config) -> str:
    """CI's log says which sandbox layers the attack suite ran against."""
    from postfit.sandbox import isolation

    return f"postfit sandbox layers: {', '.join(isolation().layers)}"
