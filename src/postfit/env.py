"""The environment of one invocation, stored next to a study's results: postfit's version and git commit, Python,
the versions of the libraries that compute the results, the hardware and the command line.

`environment()` reads it; a study directory keeps the first start's in env.json and one line per invocation in
env_history.jsonl (study/prepare.py), and the report shows both (report/provenance.py).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from postfit import __version__

# The libraries whose versions can change a result (None: not installed).
PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "vllm")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(package_dir: Path | None = None) -> dict | None:
    """{"commit", "dirty"} of the checkout postfit runs from (an editable install or PYTHONPATH=src); None when it
    was installed from a wheel or git is missing. `dirty`: tracked files differ from the commit (untracked files,
    such as study outputs, do not count)."""
    package_dir = Path(package_dir or Path(__file__).resolve().parent)
    root = package_dir.parent.parent  # src/postfit -> the checkout
    if not ((root / ".git").exists() and (root / "pyproject.toml").is_file()):
        return None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """CUDA's version and the GPUs' names where a CUDA device is visible, else the CPU model; always the CPU's
    threads (os.cpu_count) and torch's."""
    import torch

    info: dict = {"cpu": _cpu_model(), "cpu_threads": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info.update(cuda=torch.version.cuda, gpus=gpus)
    else:
        info.update(cuda=None, gpus=[])
    return info


def environment(argv: list[str] | None = None) -> dict:
    """This process's environment, as env.json stores it."""
    return {
        "postfit": __version__,
        "git": git_state(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "platform": platform.platform(),
        "command": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),  # where the command's relative paths start
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def same_setup(a: dict, b: dict) -> bool:
    """Two environments that compute the same way: equal versions, commit and hardware (time, command and torch's
    thread count, which `--workers` divides, aside)."""

    def setup(env: dict) -> dict:
        hardware = {k: v for k, v in (env.get("hardware") or {}).items() if k != "torch_threads"}  # per worker
        return {**{k: env.get(k) for k in ("postfit", "git", "python", "packages")}, "hardware": hardware}

    return setup(a) == setup(b)


def version_line() -> str:
    """`postfit --version`: the version, and the commit when running from a checkout."""
    git = git_state()
    if git is None:
        return f"postfit {__version__}"
    return f"postfit {__version__} (git {git['commit'][:12]}{', modified' if git['dirty'] else ''})"
