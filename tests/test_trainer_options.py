"""Trainer settings pass through: `sft.trainer` / `rl.trainer` fields checked against TRL's own dataclasses,
`--set` overrides, `rl.rewards` functions called as TRL calls rewards, and `postfit import-recipe`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import trl
import yaml

from conftest import ROOT, postfit
from postfit.config import RLOptions, SFTOptions, load_study, parse_study
from postfit.config.study import apply_overrides
from postfit.config.training import POSTFIT_SETS
from postfit.errors import UserError

RECIPES = ROOT / "tests" / "fixtures" / "recipes"


def smoke(**changes) -> dict:
    data = load_study("smoke")[0].model_dump(mode="json")
    for key, value in changes.items():
        data[key] = {**data[key], **value}
    return data


def test_an_unknown_trainer_field_exits_2_naming_it_and_the_trl_version(tmp_path):
    proc = postfit("plan", "smoke", "--set", "sft.trainer.max_grad_nrom=0.2", check=False)
    assert proc.returncode == 2
    assert (f"sft.trainer: unknown field 'max_grad_nrom' of TRL {trl.__version__}'s SFTConfig (did you mean "
            "'max_grad_norm'?)") in proc.stderr  # fmt: skip
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(smoke(rl={"trainer": {"no_such_field": 1}})))
    proc = postfit("plan", str(study), check=False)
    assert proc.returncode == 2 and f"rl.trainer: unknown field 'no_such_field' of TRL {trl.__version__}'s " \
        "GRPOConfig" in proc.stderr  # fmt: skip


def test_a_field_postfit_sets_is_refused_naming_the_option():
    with pytest.raises(UserError, match=r"sft.trainer: sft.trainer.learning_rate: set by sft.learning_rate; set that "
                       "instead"):  # fmt: skip
        parse_study(smoke(sft={"trainer": {"learning_rate": 1e-5}}), "s.yaml")
    with pytest.raises(UserError, match=r"rl.trainer.use_vllm: set by rl.vllm; set that instead"):
        parse_study(smoke(rl={"trainer": {"use_vllm": True}}), "s.yaml")
    with pytest.raises(UserError, match=r"sft.trainer.push_to_hub: set by postfit \(trained models stay in the study "
                       r"directory; push one yourself\); remove it"):  # fmt: skip
        parse_study(smoke(sft={"trainer": {"push_to_hub": True}}), "s.yaml")


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated")  # TRL's default, in `base`
@pytest.mark.parametrize("key", ["sft", "rl"])
def test_every_field_postfit_changes_is_refused_in_the_pass_through(key, tmp_path):
    """A TRL field that postfit's own config differs in from TRL's default has one home, postfit's option: the table
    `{key}.trainer` checks covers each (so a field postfit starts setting cannot be set twice)."""
    from postfit.train.rl import grpo_config
    from postfit.train.sft import sft_config

    ours = (sft_config(SFTOptions(), tmp_path, 3) if key == "sft" else
            grpo_config(RLOptions(format_weight=0.5, micro_batch_size=8), tmp_path, 3))  # fmt: skip
    base = type(ours)(output_dir=str(tmp_path), bf16=ours.bf16)
    changed = {f.name for f in dataclasses.fields(ours) if getattr(ours, f.name) != getattr(base, f.name)}
    assert changed and changed <= set(POSTFIT_SETS[key]), changed - set(POSTFIT_SETS[key])


def test_set_overrides_reach_the_trl_configs(tmp_path):
    from postfit.train.rl import grpo_config
    from postfit.train.sft import sft_config

    sets = ["sft.learning_rate=1e-5", "sft.trainer.max_grad_norm=0.2", "sft.trainer.neftune_noise_alpha=5",
            "rl.trainer.mask_truncated_completions=true", "rl.trainer.top_p=0.95", "rl.num_generations=4",
            "rl.batch_size=8", "grid.seeds=[7]"]  # fmt: skip
    study = load_study("smoke", sets)[0]
    sft = sft_config(study.sft, tmp_path, seed=study.grid.seeds[0])
    assert (sft.learning_rate, sft.max_grad_norm, sft.neftune_noise_alpha, sft.seed) == (1e-5, 0.2, 5, 7)
    assert isinstance(sft, trl.SFTConfig) and sft.max_steps == study.sft.steps
    rl = grpo_config(study.rl, tmp_path, seed=0)
    assert isinstance(rl, trl.GRPOConfig) and rl.mask_truncated_completions is True and rl.top_p == 0.95
    assert rl.num_generations == 4 and rl.per_device_train_batch_size * rl.gradient_accumulation_steps == 8
    # the pass-through is what the study computes: in the fingerprint; empty, it changes no earlier fingerprint
    plain = load_study("smoke")[0]
    assert load_study("smoke", ["sft.trainer={}", "rl.rewards=[]"])[0].fingerprint() == plain.fingerprint()
    assert load_study("smoke", ["sft.trainer.max_grad_norm=0.2"])[0].fingerprint() != plain.fingerprint()


def test_trl_refusing_a_value_names_the_block(tmp_path):
    from postfit.train.sft import sft_config

    study = load_study("smoke", ["sft.trainer.optim=no_such_optimizer"])[0]
    with pytest.raises(UserError, match=r"sft.trainer: TRL's SFTConfig refused these settings \(ValueError: "):
        sft_config(study.sft, tmp_path, seed=0)


def test_set_parsing():
    data = {"sft": {"steps": 1}, "grid": {"seeds": [0, 1]}, "tasks": {"train": [{"name": "a"}]}}
    sets = ["sft.learning_rate=1e-5", "rl.trainer.top_p=0.9", "grid.seeds=[3, 4]", "tasks.train.0.name=chain_sum",
            "eval.benchmarks=[math500]", "sft.padding_free=null"]  # fmt: skip
    out = apply_overrides(data, sets)
    assert out["sft"] == {"steps": 1, "learning_rate": 1e-5, "padding_free": None}
    assert out["rl"] == {"trainer": {"top_p": 0.9}} and out["grid"]["seeds"] == [3, 4]
    assert out["tasks"]["train"][0]["name"] == "chain_sum" and out["eval"]["benchmarks"] == ["math500"]
    with pytest.raises(UserError, match=r"--set 'sft.steps': expected KEY=VALUE"):
        apply_overrides(data, ["sft.steps"])
    with pytest.raises(UserError, match=r"--set 'sft.steps.x=1': sft.steps is 1, which has no 'x' to set"):
        apply_overrides(data, ["sft.steps.x=1"])
    with pytest.raises(UserError, match=r"--set 'grid.seeds=\[1': the value is not valid YAML"):
        apply_overrides(data, ["grid.seeds=[1"])
    proc = postfit("plan", "smoke", "--set", "sft.steps=0", check=False)
    assert proc.returncode == 2 and "with --set sft.steps=0: invalid study file" in proc.stderr
    assert "sft.steps: Input should be greater than 0" in proc.stderr


def test_a_reward_that_cannot_be_imported_exits_2_naming_the_entry(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(smoke(rl={"rewards": [{"function": "no_such_module:bonus", "weight": 0.5}]})))
    proc = postfit("plan", str(study), check=False)
    assert proc.returncode == 2
    assert ("rl.rewards[0].function: cannot import 'no_such_module:bonus' (ModuleNotFoundError: No module named "
            "'no_such_module')") in proc.stderr  # fmt: skip
    with pytest.raises(UserError, match=r"rl.rewards\[0\].function: expected module:function"):
        parse_study(smoke(rl={"rewards": [{"function": "bonus"}]}), "s.yaml")


REWARD_MODULE = '''
import json, os

def length_bonus(prompts, completions, completion_ids, **kwargs):
    """A user's reward: 1 per 4 completion tokens; records how TRL called it."""
    with open(os.environ["REWARD_CALLS"], "a") as f:
        f.write(json.dumps({"n": [len(prompts), len(completions), len(completion_ids)], "kwargs": sorted(kwargs),
                            "answer": kwargs["answer"], "conversational": isinstance(completions[0], list),
                            "rewards": [len(ids) / 4 for ids in completion_ids]}) + "\\n")
    return [len(ids) / 4 for ids in completion_ids]
'''


def test_a_module_function_reward_is_called_with_trls_signature_and_logged(tmp_path, monkeypatch):
    """rl.rewards' function runs beside the verifier's reward, called by TRL with its reward signature, weighted by
    TRL's reward_weights and logged as rewards/<name>/mean (a nano model, 2 GRPO steps)."""
    import torch
    from transformers import AutoModelForCausalLM

    from postfit.config import EvalOptions
    from postfit.io import read_jsonl
    from postfit.item import make_item
    from postfit.models import preset_config
    from postfit.train.pretrain import train_tokenizer
    from postfit.train.rl import grpo_config, train_rl

    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REWARD_CALLS", str(tmp_path / "calls.jsonl"))
    bonus = {"function": "my_rewards:length_bonus", "weight": 0.5}
    opts = RLOptions(steps=2, batch_size=4, num_generations=2, max_completion_length=8, eval_steps=10,
                     heldout_items=1, logging_steps=1, rewards=[bonus])  # fmt: skip
    assert grpo_config(opts, tmp_path / "c", 0).reward_weights == [1.0, 0.5]
    tokenizer = train_tokenizer("What is 1 + 2? The answer is \\boxed{3}.\n" * 50, vocab_size=300)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(preset_config("nano", "qwen3", tokenizer, 128))
    items = [make_item(id=f"q{i}", source="t", domain="math", prompt=f"What is 1 + {i}?", split="rl",
                       answer=str(1 + i)) for i in range(4)]  # fmt: skip
    train_rl(model, tokenizer, items, items[:1], opts, EvalOptions(samples=0, k=[], max_new_tokens=4),
             tmp_path / "run", seed=0)  # fmt: skip
    calls = read_jsonl(tmp_path / "calls.jsonl")
    assert len(calls) == 2 and all(c["n"] == [4, 4, 4] and c["conversational"] for c in calls)
    assert {"item", "answer", "trainer_state", "log_metric", "log_extra"} <= set(calls[0]["kwargs"])
    assert len(calls[0]["answer"]) == 4 and set(calls[0]["answer"]) <= {"1", "2", "3", "4"}  # the items' answers
    log = [r for r in read_jsonl(tmp_path / "run" / "train_log.jsonl") if "rewards/length_bonus/mean" in r]
    assert [r["rewards/length_bonus/mean"] for r in log] == pytest.approx([sum(c["rewards"]) / 4 for c in calls])
    assert all("rewards/correctness_reward/mean" in r for r in log)
    assert all(r["reward"] == pytest.approx(r["rewards/correctness_reward/mean"] + 0.5 *
                                            r["rewards/length_bonus/mean"]) for r in log)  # fmt: skip


def test_reward_names_must_differ():
    rewards = [{"function": "postfit.train.rl:format_reward"}]
    with pytest.raises(UserError, match="rl: rewards: two reward functions named 'format_reward'"):
        parse_study(smoke(rl={"rewards": rewards}), "s.yaml")


def _import(recipe: Path, tmp_path: Path) -> tuple[dict, str]:
    out = tmp_path / "study.yaml"
    proc = postfit("import-recipe", str(recipe), "-o", str(out))
    load_study(out)  # a valid study file
    assert proc.stdout == "" and f"study file: {out}" in proc.stderr
    return yaml.safe_load(out.read_text()), proc.stderr


def test_import_an_open_r1_grpo_recipe(tmp_path):
    study, notes = _import(RECIPES / "Qwen2.5-1.5B-Instruct" / "grpo" / "config_demo.yaml", tmp_path)
    assert study["model"] == {"name_or_path": "Qwen/Qwen2.5-1.5B-Instruct", "dtype": "bfloat16",
                              "attn_implementation": "flash_attention_2"}  # fmt: skip
    assert study["data"] == {"rl": {"source": "openr1-math"}}  # the preset of open-r1/OpenR1-Math-220k
    assert study["grid"] == {"inits": ["pretrained", "random"], "recipes": ["rl"], "seeds": [42]}
    rl = study["rl"]
    assert (rl["learning_rate"], rl["num_generations"], rl["max_completion_length"], rl["temperature"]) == (
        2e-5, 16, 1024, 0.7)  # fmt: skip
    assert (rl["batch_size"], rl["micro_batch_size"], rl["vllm"]) == (64, 16, {})
    assert rl["trainer"] == {"gradient_checkpointing_kwargs": {"use_reentrant": False}, "log_completions": True,
                             "log_level": "info", "logging_first_step": True}  # fmt: skip
    for unmapped in (
        "system_prompt",
        "num_train_epochs",
        "max_prompt_length",
        "push_to_hub",
        "hub_model_id",
        "output_dir",
        "report_to",
        "bf16",
        "reward_funcs: format, tag_count",
        "lr_scheduler_type",
    ):
        assert f"\n{unmapped}" in notes, unmapped
    assert f"max_prompt_length: left out, no postfit meaning (not a field of TRL {trl.__version__}'s " in notes


def test_import_an_open_r1_sft_recipe(tmp_path):
    proc = postfit("import-recipe", str(RECIPES / "OpenR1-Distill-7B" / "sft" / "config_distill.yaml"))
    study, notes = yaml.safe_load(proc.stdout), proc.stderr  # without -o: the study on stdout, the notes on stderr
    parse_study(study, "imported")
    assert study["data"] == {"sft": {"source": "open-r1/Mixture-of-Thoughts", "subset": "all"}}
    assert study["model"]["chat_template"].startswith("{%- for message in messages %}<|im_start|>")
    sft = study["sft"]
    assert (sft["learning_rate"], sft["max_length"], sft["liger"], sft["batch_size"], sft["micro_batch_size"]) == (
        4e-5, 32768, True, 16, 2)  # fmt: skip
    assert sft["trainer"]["max_grad_norm"] == 0.2 and sft["trainer"]["eos_token"] == "<|im_end|>"
    assert "lr_scheduler_type: left out, cosine_with_min_lr is none of postfit's sft.lr_scheduler" in notes
    assert "packing: left out, set by postfit (no packing)" in notes and "lr_scheduler_kwargs: left out" in notes
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"dataset_name": "x/y"}))
    proc = postfit("import-recipe", str(bad), check=False)
    assert proc.returncode == 2 and "model_name_or_path: the recipe names no model" in proc.stderr
