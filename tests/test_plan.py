"""`postfit plan`: runs, tokens and FLOPs of a study from its file alone, offline, checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import postfit
from postfit.config import builtin_studies, load_study, parse_study
from postfit.study.plan import make_plan


@pytest.fixture
def empty_hf_home(tmp_path: Path, monkeypatch) -> Path:
    """No Hugging Face cache at all: the plan must not need one (nor the network)."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def _plan_json(*args: str, check: bool = True) -> dict:
    return json.loads(postfit("plan", *args, "--json", check=check).stdout)


def test_smoke_numbers_equal_a_hand_computation():
    # nano (Qwen3): hidden 64, 2 layers, 4 heads x 16, 2 kv heads, MLP 192, vocab 512, tied embeddings.
    per_layer = 64 * 64 + 2 * (64 * 32) + 64 * 64 + 2 * 16 + 3 * 64 * 192 + 2 * 64  # attention, q/k norms, MLP, norms
    n = 512 * 64 + 2 * per_layer + 64
    assert n == 131_456
    pretrain = (150_000 // 128 // 16) * 16 * 128  # whole batches of whole 128-token sequences: 73 steps
    sft = 600 * 16 * 256  # steps x batch x max_length (the default), per SFT run
    evaluation = 4 * 32 * (1 + 2) * 24  # 4 splits x 32 items x (greedy + 2 samples) x 24 new tokens, per run
    rl = 40 * 32 * 24  # RL steps x completions per step x max completion length, per sft+rl run
    heldout = 3 * 32 * 24  # held-out evaluations at steps 0, 20, 40 x 32 items x 24 new tokens
    forgetting = 2 * 32 * 128  # the final and the starting model on at most 32 held-out corpus blocks of 128
    flops = 6 * n * pretrain + 6 * n * 2 * sft + (2 + 6) * n * 2 * rl + 2 * n * 2 * heldout + 2 * n * 6 * evaluation
    flops += 2 * n * 6 * forgetting

    plan = _plan_json("smoke")
    assert plan["params"] == n
    assert plan["runs"] == [f"{i}-{r}-s0" for i in ("pretrained", "random") for r in ("none", "sft", "sft+rl")]
    stages = {s["name"]: s for s in plan["stages"]}
    assert set(stages) == {"pre-train", "SFT", "RL generation", "RL update", "RL held-out eval", "evaluation",
                           "forgetting"}  # fmt: skip
    assert (stages["pre-train"]["runs"], stages["pre-train"]["tokens"]) == (1, pretrain)
    assert (stages["SFT"]["runs"], stages["SFT"]["tokens_each"]) == (2, sft)  # sft+rl reuses the sft model
    assert (stages["RL generation"]["runs"], stages["RL generation"]["tokens_each"]) == (2, rl)
    assert (stages["RL held-out eval"]["runs"], stages["RL held-out eval"]["tokens_each"]) == (2, heldout)
    assert (stages["evaluation"]["runs"], stages["evaluation"]["tokens_each"]) == (6, evaluation)
    assert (stages["forgetting"]["runs"], stages["forgetting"]["tokens_each"]) == (6, forgetting)
    assert plan["total_flops"] == flops

    from postfit.study.plan import render

    text = render(make_plan(load_study("smoke")[0], "smoke"))  # the CLI's text, without a second process
    assert "N = 131,456 parameters" in text
    assert f"{flops:.3e}" in text and "6·N·D" in text and "2·N·D" in text
    assert f"<={2 * sft:>17,}" in text  # SFT tokens are an upper bound


def test_rl_stages_count_generation_update_and_heldout(tmp_path: Path):
    data = yaml.safe_load(builtin_studies()["smoke"].read_text())
    data["grid"]["recipes"] = ["sft", "sft+rl"]
    data["rl"] = {"steps": 30, "batch_size": 16, "num_generations": 4, "max_completion_length": 20, "eval_steps": 25,
                  "heldout_items": 10, "beta": 0.1}  # fmt: skip
    plan = make_plan(parse_study(data, "s.yaml"), "s.yaml")
    stages = {s.name: s for s in plan.stages}
    assert stages["SFT"].runs == 2  # sft+rl reuses the sft run's model
    assert stages["RL generation"].runs == 2 and stages["RL generation"].tokens_each == 30 * 16 * 20
    assert stages["RL update"].flops_per_param == 6 and stages["RL reference"].flops_per_param == 2
    # held-out evaluations at steps 0, 25 and 30 (the last), 10 items, eval.max_new_tokens 24 each
    assert stages["RL held-out eval"].tokens_each == 3 * 10 * 24


def test_evaluation_counts_each_splits_samples():
    """The default study: six procedural splits of 200 items (ood_near included), 2 samples each except id_test and
    ood_near (8: eval.samples_by_split), 40 new tokens."""
    study = load_study("default")[0]
    stages = {s.name: s for s in make_plan(study, "default").stages}
    assert study.eval.samples_by_split == {"id_test": 8, "ood_near": 8}
    assert stages["evaluation"].tokens_each == (4 * 200 * (1 + 2) + 2 * 200 * (1 + 8)) * 40


def test_probes_and_their_control_are_counted():
    """The default study: every run's final model is probed (context: 2 families x 64 queries x 5 k x 8 new
    tokens, the control's probe once more; adaptation: 160 steps x 16 x 256 trained, 4 evaluations of 48 items x 16
    new tokens), and the control trains once (300 steps x 16 x 512)."""
    stages = {s.name: s for s in make_plan(load_study("default")[0], "default").stages}
    assert (stages["probe: context"].runs, stages["probe: context"].tokens_each) == (12 + 1, 2 * 64 * 5 * 8)
    assert (stages["probe control"].runs, stages["probe control"].tokens_each) == (1, 300 * 16 * 512)
    assert (stages["probe: adapt SFT"].runs, stages["probe: adapt SFT"].tokens_each) == (12, 160 * 16 * 256)
    assert stages["probe: adapt SFT"].flops_per_param == 6 and stages["probe: adapt eval"].flops_per_param == 2
    assert stages["probe: adapt eval"].tokens_each == 4 * 48 * 16
    assert "probe: icl" not in stages


def test_builtin_studies_plan_offline(empty_hf_home: Path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a CPU machine, also where a GPU is present
    for name in ("default", "paper"):  # smoke: test_smoke_numbers_equal_a_hand_computation
        proc = postfit("plan", name, check=False)
        assert f"study {name} (" in proc.stdout and ": valid" in proc.stdout
        assert "FLOPs: 6·N·D to train" in proc.stdout
        # the cost is printed either way; `run`'s checks then refuse the paper study on a CPU, as `run` would
        assert proc.returncode == (2 if name == "paper" else 0), proc.stderr
    assert "requires_gpu is set and no CUDA device is visible" in proc.stderr
    assert not any(empty_hf_home.rglob("*.safetensors")), "plan must not download or load weights"


def test_paper_plan(empty_hf_home: Path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    study, _ = load_study("paper")
    assert study.requires_gpu and study.model.name_or_path.startswith("Qwen/Qwen3-")
    plan = _plan_json("paper", check=False)
    assert plan["refused"].startswith("paper: requires_gpu is set")
    # Qwen3-1.7B from the published config: 151936 x 2048 tied embeddings + 28 layers.
    per_layer = 2048 * 2048 * 2 + 2048 * 1024 * 2 + 2 * 128 + 3 * 2048 * 6144 + 2 * 2048
    assert plan["params"] == 151_936 * 2048 + 28 * per_layer + 2048 == 1_720_574_976
    assert "published configs" in plan["params_from"]
    assert len(plan["runs"]) == 6 and "random-sft+rl-s0" in plan["runs"]
    stages = {s["name"]: s for s in plan["stages"]}
    assert "pre-train" not in stages, "a hub model is not pre-trained by postfit"
    assert stages["SFT"]["runs"] == 2 and stages["RL generation"]["runs"] == 2
    s = study.sft
    assert stages["SFT"]["tokens_each"] == s.steps * s.batch_size * s.max_length
    items = 500 + 30 + 30 + 268  # math500, aime24, aime25, livecodebench (v4_v5)
    assert stages["evaluation"]["tokens_each"] == items * (1 + study.eval.samples) * study.eval.max_new_tokens
    assert plan["total_flops"] == sum(st["flops"] for st in plan["stages"])
    # SFT and RL read disjoint rows of OpenR1-Math (the file alone says so: no data loaded).
    assert plan["data"] == ["data.sft: openr1-math (train) rows [0, 32,000)",
                            "data.rl: openr1-math (train) rows [32,000, 40,000)",
                            "data.sft and data.rl rows: disjoint"]  # fmt: skip
    # Memory per GPU (8 by default) for bf16 weights + gradients + fp32 Adam states, and GPU-hours at 40% MFU.
    n = plan["params"]
    assert plan["memory_per_gpu"] == {"ddp": 16 * n, "zero2": 2 * n + 2 * n // 8 + 12 * n // 8,
                                      "zero3": 2 * n // 8 + 2 * n // 8 + 12 * n // 8,
                                      "fsdp": 2 * n // 8 + 2 * n // 8 + 12 * n // 8}  # fmt: skip
    assert plan["gpu_hours"]["hours"] == pytest.approx(plan["total_flops"] / (989e12 * 0.40) / 3600)


def test_hub_model_from_a_local_config_and_unknown_model(tmp_path: Path, empty_hf_home: Path):
    from transformers import Qwen3Config

    local = tmp_path / "tiny"
    Qwen3Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                intermediate_size=64, vocab_size=100, tie_word_embeddings=False).save_pretrained(local)  # fmt: skip
    data = yaml.safe_load(builtin_studies()["smoke"].read_text())
    del data["pretrain"]
    data["model"] = {"name_or_path": str(local)}
    per_layer = 32 * 32 + 32 * 16 * 2 + 32 * 32 + 2 * 16 + 3 * 32 * 64 + 2 * 32
    assert make_plan(parse_study(data, "s.yaml"), "s.yaml").params == 2 * 100 * 32 + per_layer + 32

    data["model"] = {"name_or_path": "some-org/never-heard-of-it"}
    study_file = tmp_path / "unknown.yaml"
    study_file.write_text(yaml.safe_dump(data))
    proc = postfit("plan", str(study_file), check=False)  # HF_HOME: the empty cache (fixture)
    assert "unknown N" in proc.stdout and "2,457,600" in proc.stdout  # tokens still printed
    assert proc.returncode == 2 and "`hf download some-org/never-heard-of-it`" in proc.stderr  # as run refuses it


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("eval", {"benchmarks": ["aime2099"]}, "eval.benchmarks: unknown benchmark 'aime2099'; expected one of"),
        ("data", {"sft": {"source": "no-such-set"}}, "data.sft.source: unknown data source 'no-such-set'"),
        ("sft", {"batch_size": 16, "micro_batch_size": 5}, "sft: batch_size (16) must be a multiple"),
        ("grid", {"recipes": ["rl"]}, "recipe `rl` needs `tasks` or `data.rl`"),
    ],
)
def test_invalid_study_exits_2_naming_file_and_key(tmp_path: Path, key, value, expected):
    data = yaml.safe_load(builtin_studies()["smoke"].read_text())
    data[key] = value
    if key == "grid":
        del data["tasks"]
        data["eval"]["benchmarks"] = ["math500"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    proc = postfit("plan", str(bad), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert str(bad) in message and expected in message


def test_paper_never_runs_on_a_cpu(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a CPU machine, also where a GPU is present: never a skip
    out = tmp_path / "paper"
    proc = postfit("run", "paper", "--out", str(out), check=False)
    assert proc.returncode == 2 and "requires_gpu" in proc.stderr and not out.exists()
    assert "paper needs a GPU" in " ".join(postfit("run", "--help").stdout.split())
