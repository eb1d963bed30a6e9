"""postfit installs into the environment a researcher already has: pyproject.toml declares tested ranges (torch from
2.11, which ran on a GPU image), so pip keeps an existing CUDA torch; constraints.txt pins the exact tested set
that the README's commands and .ci/run install, every dependency within those ranges."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEPENDENCIES = [Requirement(r) for r in PROJECT["dependencies"]]
TEST_EXTRA = [Requirement(r) for r in PROJECT["optional-dependencies"]["test"]]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _closure(requirements: list[Requirement]) -> dict[str, importlib.metadata.Distribution]:
    """Every installed distribution these requirements need here, with their own requirements (markers and extras
    as pip evaluates them on this interpreter)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [(r, ("",)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
            continue
        name = canonicalize_name(req.name)
        if name in found and not req.extras:
            continue
        dist = found.get(name) or importlib.metadata.distribution(req.name)
        found[name] = dist
        todo += [(Requirement(r), ("", *req.extras)) for r in dist.requires or []]
    return found


def test_constraints_pin_every_dependency_within_the_declared_ranges():
    pins = _constraints()
    for req in DEPENDENCIES + TEST_EXTRA:
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pin), f"constraints.txt's {req.name}=={pin} is outside pyproject's {req}"
    installed = _closure(DEPENDENCIES + TEST_EXTRA)
    unpinned = sorted(set(installed) - set(pins))
    assert unpinned == [], f"constraints.txt lacks {unpinned}: regenerate it (see its header)"
    differ = {n: (d.version, pins[n]) for n, d in installed.items()
              if not SpecifierSet(f"=={pins[n]}").contains(d.version)}  # fmt: skip
    assert differ == {}, f"installed vs constraints.txt: {differ}; install with -c constraints.txt, or regenerate it"


def test_the_readme_and_ci_install_the_constraints():
    readme = (ROOT / "README.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert all("pip install -c constraints.txt -e " in c for c in commands[:2]), commands
    assert "pip install -c constraints.txt -e '.[test]'" in (ROOT / ".ci" / "run").read_text()


def _fake_wheel(directory: Path, dist: importlib.metadata.Distribution) -> None:
    """A wheel holding only `dist`'s real METADATA (its name, version and requirements): what pip's resolver reads."""
    name = re.sub(r"[-_.]+", "_", canonicalize_name(dist.metadata["Name"]))
    info = f"{name}-{dist.version}.dist-info"
    with zipfile.ZipFile(directory / f"{name}-{dist.version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", dist.read_text("METADATA"))
        wheel = "Wheel-Version: 1.0\nGenerator: postfit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        whl.writestr(f"{info}/WHEEL", wheel)
        whl.writestr(f"{info}/RECORD", "")


def _env_with_torch(root: Path, version: str) -> Path:
    """A bare venv (no system site-packages) whose site-packages hold a torch `version`, as a GPU image has its
    CUDA build; only its metadata, which is all pip looks at."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python*/site-packages"))
    info = site / f"torch-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    return root / "bin" / "python"


def _would_install(python: Path, wheels: Path, requirements: list[str]) -> dict[str, str]:
    """name -> version of what `pip install` would install into `python`'s environment from `wheels` alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}  # no index, config or constraint of
    env["PIP_CONFIG_FILE"] = os.devnull  # this machine's: only the wheels directory
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run", "--quiet", "--report", "-",
           "--no-index", "--find-links", str(wheels), *requirements]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in plan}


def test_pip_keeps_an_existing_torch(tmp_path):
    """Resolving pyproject.toml's ranges against an environment holding torch 2.11 installs the rest, not torch;
    the exact pin that was there before would replace it, and a torch below the range is replaced too."""
    wheels = tmp_path / "wheels"  # every dependency at its tested version, torch 2.13.0 included
    wheels.mkdir()
    for dist in _closure(DEPENDENCIES).values():
        _fake_wheel(wheels, dist)
    declared = [str(r) for r in DEPENDENCIES]
    plan = _would_install(_env_with_torch(tmp_path / "gpu-image", "2.11.0"), wheels, declared)
    assert "torch" not in plan and plan["transformers"] == _constraints()["transformers"], plan
    pinned = [f"torch=={_constraints()['torch']}" if r.name == "torch" else str(r) for r in DEPENDENCIES]
    assert "torch" in _would_install(_env_with_torch(tmp_path / "pinned", "2.11.0"), wheels, pinned)
    assert "torch" in _would_install(_env_with_torch(tmp_path / "older", "2.10.0"), wheels, declared)
