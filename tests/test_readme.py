"""The README opens with the two set-up commands, CI runs the second one verbatim, and it stays a manual."""

from __future__ import annotations

import re

from conftest import ROOT


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block and readme.index(block.group(0)) < readme.index("\n## "), "the commands must open the README"
    return block.group(1).strip().splitlines()


def test_readme_opens_with_two_commands():
    """Both install the tested versions (constraints.txt; tests/test_install.py checks it) and name their study."""
    run, test = _setup_commands()
    assert "postfit run default" in run and "pip install -c constraints.txt -e . " in run
    assert test.endswith("pytest") and "pip install -c constraints.txt -e '.[test]'" in test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _setup_commands()[1] in ci


def test_readme_is_a_manual_under_30_kb():
    assert (ROOT / "README.md").stat().st_size < 30_000, "README.md is a manual: move reference to docs/*.md"
    measurements = ROOT / "docs" / "measurements.md"
    assert measurements.is_file(), "dated figures belong in docs/measurements.md"
    dates = re.findall(r"^## (\d{4}-\d{2}-\d{2})", measurements.read_text(), re.M)
    assert dates, "docs/measurements.md has no '## YYYY-MM-DD — ...' section"
    assert dates == sorted(dates, reverse=True), "docs/measurements.md must list its sections newest first"
