"""Study files: built-ins validate; bad files exit 2 naming the file and the key, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import ROOT, postfit
from postfit.config import builtin_studies, load_study, options_markdown, parse_study
from postfit.errors import UserError


def _smoke() -> dict:
    return yaml.safe_load(builtin_studies()["smoke"].read_text())


def test_builtin_studies_validate():
    assert {"default", "smoke"} <= set(builtin_studies())
    for name in builtin_studies():
        study, path = load_study(name)
        assert study.name == name and path.is_file()


def _set(data: dict, dotted: str, value) -> dict:
    node = data
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[int(last) if isinstance(node, list) else last] = value
    return data


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("sft.stepz", 10, "sft.stepz: unknown key"),
        ("sft.steps", "many", "sft.steps: Input should be a valid integer"),
        ("sft.steps", 0, "sft.steps: Input should be greater than 0"),
        ("model.preset", "giant", "model.preset: unknown preset 'giant'"),
        ("grid.inits", ["pretrained", "warm"], "grid.inits: unknown init 'warm'; expected `pretrained`, `random` or"),
        ("eval.k", [8], "eval: k values [8] must lie in 1..samples"),
        ("tasks.train.0.name", "no_such_task", "tasks.train[0]: unknown reasoning-gym task 'no_such_task'"),
        ("tasks.train.0.config", {"min_termz": 2}, "tasks.train[0]: reasoning-gym rejects config"),
        ("tasks.target", "essay", "tasks.target: Input should be 'trace' or 'answer'"),
        ("sft.padding_free", "sometimes", "sft.padding_free: Input should be a valid boolean"),
        ("eval.cuda_graphs", "fast", "eval.cuda_graphs: Input should be a valid boolean"),
        ("model.attn_implementation", "flash", "model.attn_implementation: Input should be 'sdpa', 'eager'"),
    ],
)
def test_bad_values_name_the_key(key, value, expected):
    with pytest.raises(UserError) as exc:
        parse_study(_set(_smoke(), key, value), "study.yaml")
    assert str(exc.value).startswith("study.yaml: invalid study file")
    assert expected in str(exc.value)


def test_trace_target_needs_a_tracer():
    data = _set(_smoke(), "tasks.train.0", {"name": "products", "config": {"max_digits": 1}})
    with pytest.raises(UserError, match="tasks: target `trace` needs a step writer for \\['products'\\]"):
        parse_study(data, "s.yaml")


def test_missing_required_key():
    data = _smoke()
    del data["name"]
    with pytest.raises(UserError, match="name: required key is missing"):
        parse_study(data, "s.yaml")


def test_without_tasks_every_stage_needs_real_data():
    data = _smoke()
    del data["tasks"]
    with pytest.raises(UserError, match="grid.recipes: recipe `sft` needs `tasks` or `data.sft`"):
        parse_study(data, "s.yaml")
    data["grid"]["recipes"] = ["none"]
    with pytest.raises(UserError, match="eval.benchmarks: nothing to evaluate without `tasks`"):
        parse_study(data, "s.yaml")


def test_cli_bad_study_exits_2_and_writes_nothing(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_set(_smoke(), "sft.learning_rat", 0.1)))
    out = tmp_path / "out"
    proc = postfit("run", str(bad), "--out", str(out), check=False)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "sft.learning_rat: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def _liger_runs_here() -> bool:
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None


@pytest.mark.skipif(_liger_runs_here(), reason="Liger and a GPU are both here: nothing to refuse")
def test_cli_liger_without_its_kernels_exits_2_naming_the_key(tmp_path: Path):
    """Liger's kernels need the extra and a CUDA GPU: a study asking for them without either stops before
    writing."""
    path = tmp_path / "liger.yaml"
    path.write_text(yaml.safe_dump(_set(_smoke(), "sft.liger", True)))
    proc = postfit("run", str(path), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "sft.liger: " in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "runs").exists()


def test_cli_yaml_syntax_error_names_line(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nmodel: {preset: nano\n")
    proc = postfit("run", str(bad), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "broken.yaml: line 3" in proc.stderr.replace("\n", " ")


def test_cli_unknown_study_name_lists_builtins(tmp_path: Path):
    proc = postfit("run", "nonexistent", "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2 and "['default', 'paper', 'scaling', 'smoke']" in proc.stderr.replace("\n", " ")


def test_readme_option_table_is_generated_from_the_models():
    text = (ROOT / "docs" / "study-file.md").read_text()
    assert options_markdown() in text, "docs/study-file.md's option table is stale: paste `postfit options` into it"


def _with_samples(by_split: dict | None, k: list[int] | None = None) -> dict:
    data = _smoke()  # samples: 2; splits id_test, ood_harder, ood_family, ood_format
    if by_split is not None:
        data["eval"]["samples_by_split"] = by_split
    if k is not None:
        data["eval"]["k"] = k
    return data


@pytest.mark.parametrize(
    ("by_split", "k", "expected"),
    [
        (
            {"id_tset": 8},
            None,
            "eval.samples_by_split: 'id_tset' is not a split this study evaluates; its splits: "
            "id_test, ood_harder, ood_family, ood_format",
        ),  # fmt: skip
        ({"ood_rule": 8}, None, "'ood_rule' is not a split this study evaluates"),  # smoke has no rule shift
        ({"id_test": -1}, None, "eval.samples_by_split: {'id_test': -1}: a number of samples is >= 0"),
        ({"id_test": 8}, [2, 9], "eval: k values [9] must lie in 1..8, the most samples any split draws"),
    ],
)
def test_samples_by_split_is_checked(by_split, k, expected):
    with pytest.raises(UserError) as exc:
        parse_study(_with_samples(by_split, k), "study.yaml")
    assert expected in str(exc.value)


def test_samples_by_split_sets_samples_per_split_and_allows_k_up_to_its_largest():
    study = parse_study(_with_samples({"id_test": 8, "ood_format": 0}, [2, 8]), "study.yaml")
    assert [study.eval.samples_for(s) for s in ("id_test", "ood_harder", "ood_format")] == [8, 2, 0]
    assert study.eval.k == [2, 8]


def test_a_study_resumes_only_with_the_same_samples_by_split(tmp_path: Path):
    """An output directory written before `samples_by_split` existed (its study.yaml lacks the key) resumes with the
    same study; one written with samples_by_split resumes with it, never with other numbers."""
    from postfit.layout import StudyDir
    from postfit.study.prepare import _check_same_study

    old = StudyDir(tmp_path / "old")
    old.root.mkdir()
    dumped = parse_study(_smoke(), "smoke.yaml").model_dump(mode="json")
    del dumped["eval"]["samples_by_split"]
    old.study_yaml.write_text(yaml.safe_dump(dumped))
    _check_same_study(parse_study(_smoke(), "smoke.yaml"), old, replace=False)
    with pytest.raises(UserError, match="holds results of a different study"):
        _check_same_study(parse_study(_with_samples({"id_test": 8}), "smoke.yaml"), old, replace=False)
    new = StudyDir(tmp_path / "new")
    new.root.mkdir()
    study = parse_study(_with_samples({"id_test": 8}), "smoke.yaml")
    new.study_yaml.write_text(yaml.safe_dump(study.model_dump(mode="json")))
    _check_same_study(parse_study(_with_samples({"id_test": 8}), "smoke.yaml"), new, replace=False)
    for other in ({"id_test": 4}, {}):
        with pytest.raises(UserError, match="holds results of a different study"):
            _check_same_study(parse_study(_with_samples(other), "smoke.yaml"), new, replace=False)
