"""RL: the reward is the evaluation verifier; sft+rl reuses the SFT run's model; options validate."""

from __future__ import annotations

import pytest

from postfit.config import load_study, parse_study
from postfit.errors import UserError
from postfit.item import Item
from postfit.tasks import make_splits
from postfit.train.rl import correctness_reward, format_reward, rl_dataset
from postfit.verify import score


@pytest.fixture(scope="module")
def items():
    return make_splits(load_study("smoke")[0].tasks)["id_test"][:10]


def _column(item: Item, n: int) -> list[str]:
    """The dataset column the reward functions receive for n completions of `item`."""
    return list(rl_dataset([item])["item"]) * n


def _corpus(item: Item) -> list[str]:
    ref = item.answer
    return [
        f"Answer: {ref}", f"1 + 1 = 2. Answer: {ref}.", f"Answer: {int(ref) + 1}", f"Answer: {ref}0",
        "Answer:", "", "no answer here", f"Answer: {ref}\nAnswer: {int(ref) - 1}", f"answer: {ref}",
        f"Answer: {ref} apples", "Answer: " + "9" * 500, "<|end|>", f"Answer:{ref}",
    ]  # fmt: skip


def test_reward_is_the_evaluation_verifier(items):
    for item in items:
        completions = _corpus(item)
        column = _column(item, len(completions))
        # TRL passes conversational completions as message lists.
        as_messages = [[{"role": "assistant", "content": c}] for c in completions]
        rewards = correctness_reward(as_messages, column)
        assert rewards == correctness_reward(completions, column)
        assert rewards == [score(item, c)[1] for c in completions]
        assert rewards[0] == 1.0 and rewards[2] == 0.0 and rewards[4] == 0.0  # right, wrong, malformed


def test_reward_is_the_evaluation_verifier_for_math_and_code(benign):
    from postfit.item import make_item

    math = make_item(id="m", source="t", domain="math", prompt="Half of 1?", split="test", answer="\\frac{1}{2}")
    code = make_item(id="c", source="t", domain="code", prompt="Write add.", split="test",
                     tests={"style": "assert", "code": "assert add(2, 3) == 5", "entry_point": "add"})  # fmt: skip
    cases = [
        (math, ["\\boxed{\\frac{1}{2}}", "Answer: 0.5", "\\boxed{2}", "\\boxed{", "", "1/2 maybe"]),
        (code, ["```python\ndef add(a, b):\n    return a + b\n```", "```python\ndef add(a, b):\n    return a - b\n```",
               "```python\ndef add(a, b) return\n```", "no code", "```python\nimport os\nos._exit(0)\n```"]),
    ]  # fmt: skip
    for item, completions in cases:
        rewards = correctness_reward(completions, _column(item, len(completions)))
        assert rewards == [score(item, c)[1] for c in completions]
        assert rewards[0] == 1.0 and rewards[1:].count(1.0) == (1 if item is math else 0), rewards


def test_format_reward_literals():
    assert format_reward(["12 + 7 = 19. Answer: 19", "Answer: 19\nmore text", "Answer:", "19"]) == [1, 0, 0, 0]


def test_format_reward_follows_each_items_answer_convention():
    """`Answer:` for procedural items, a box or final-answer line for math, a code block for code."""
    items = {
        name: Item(id=name, source="t", domain=domain, prompt="p", split="test", meta=meta)
        for name, domain, meta in [("procedural", "procedural", {}), ("math", "math", {}), ("code", "code", {}),
                                   ("humaneval", "code", {"code_prefix": "def f(x):\n"})]
    }  # fmt: skip
    texts = ["so Answer: 4", "so $\\boxed{4}$", "```python\nprint(4)\n```", "    return x\n", "no format here"]
    expected = {
        "procedural": [1, 0, 0, 0, 0],
        "math": [1, 1, 0, 0, 0],  # a final-answer line is a math answer too
        "code": [0, 0, 1, 0, 0],
        "humaneval": [1, 1, 1, 1, 1],  # a completion continues the prompt's code: any text is the format
    }
    for name, item in items.items():
        got = format_reward(texts, item=_column(item, len(texts)))
        assert got == expected[name], (name, got)


def test_rl_options_validate():
    data = load_study("smoke")[0].model_dump(mode="json")
    data["rl"] = {"batch_size": 30, "num_generations": 8}
    with pytest.raises(UserError, match=r"rl: batch_size \(30\) must be a multiple of num_generations \(8\)"):
        parse_study(data, "s.yaml")
    data["rl"] = {"loss_type": "ppo"}
    with pytest.raises(UserError, match="rl.loss_type: Input should be"):
        parse_study(data, "s.yaml")


@pytest.mark.slow
def test_sft_plus_rl_reuses_the_sft_model(tmp_path, monkeypatch):
    import postfit.train.sft
    from postfit.io import read_json, read_jsonl
    from postfit.study.runner import run_study

    calls = []
    real = postfit.train.sft.train_sft
    monkeypatch.setattr(postfit.train.sft, "train_sft", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    data = load_study("smoke")[0].model_dump(mode="json")
    data["grid"] = {"inits": ["random"], "recipes": ["sft", "sft+rl"], "seeds": [0]}
    data["tasks"].update(train_size=64, test_size=8)
    data["sft"].update(steps=20)
    data["rl"] = {"steps": 4, "batch_size": 16, "num_generations": 4, "max_completion_length": 16,
                  "eval_steps": 2, "heldout_items": 4}  # fmt: skip
    data["eval"].update(samples=0, k=[])
    run_study(parse_study(data, "s.yaml"), tmp_path)
    assert calls == [tmp_path / "runs" / "random-sft-s0"], "SFT must be trained once, in the sft run's directory"
    rl_train = read_json(tmp_path / "runs" / "random-sft+rl-s0" / "run.json")["train"]
    assert rl_train["sft_from"] == str(tmp_path / "runs" / "random-sft-s0" / "model")
    assert rl_train["steps"] == 4 and rl_train["generated_tokens"] > 0
    assert rl_train["generate_s"] > 0 and rl_train["update_s"] > 0
    # Held-out greedy accuracy during RL: steps 0, 2 and 4, every item stored.
    heldout = read_jsonl(tmp_path / "runs" / "random-sft+rl-s0" / "heldout.jsonl")
    assert sorted({r["step"] for r in heldout}) == [0, 2, 4] and len(heldout) == 12
    log = read_jsonl(tmp_path / "runs" / "random-sft+rl-s0" / "train_log.jsonl")
    assert any("frac_reward_zero_std" in r and "completions/mean_length" in r for r in log)


def _sampled_reward(model_dir, items: list[Item], temperature: float, n: int = 8) -> float:
    """Mean verifier score of n sampled completions per item (fixed sampling seed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postfit.config import EvalOptions
    from postfit.evaluation.generate import generate

    model, tok = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    opts = EvalOptions(batch_size=64, max_new_tokens=24, samples=n, k=[n], temperature=temperature)
    outs = generate(model, tok, [it.prompt for it in items], opts, n=n, sample=True, seed=123)
    return sum(score(it, c)[1] for it, cs in zip(items, outs, strict=True) for c in cs) / (n * len(items))


# Measured (2026-11-24, smoke SFT model, random init): after 40 GRPO steps the reward on the RL prompts was
# 0.566 / 0.628 / 0.569 for RL seeds 0 / 1 / 2 (sd 0.035, range 0.062), from 0.419 before.
SEED_NOISE = 0.062


@pytest.mark.slow
@pytest.mark.parametrize("init", ["pretrained", "random"])
def test_grpo_raises_in_distribution_reward(smoke_dir, init):
    """The smoke study's SFT model is partly right on its RL prompts (never seen in SFT); its sft+rl model, GRPO
    on those prompts, scores higher than the SFT model it started from by more than the seed-to-seed spread."""
    from postfit.io import read_jsonl

    study = load_study("smoke")[0]
    prompts = [Item.from_json(row) for row in read_jsonl(smoke_dir / "data" / "rl.jsonl")]
    before = _sampled_reward(smoke_dir / "runs" / f"{init}-sft-s0" / "model", prompts, study.rl.temperature)
    after = _sampled_reward(smoke_dir / "runs" / f"{init}-sft+rl-s0" / "model", prompts, study.rl.temperature)
    assert 0.1 < before < 0.9, f"the SFT model should be partly right, got reward {before:.3f}"
    assert after - before > SEED_NOISE, (before, after)


@pytest.mark.slow
def test_static_rollouts_train_grpo(smoke_dir, tmp_path):
    """`rl.rollouts: static` samples GRPO's completions with postfit's static-cache decoder: the steps run, every
    completion ends at an end-of-turn id or the length limit, and the rewards are the verifier's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postfit.config import EvalOptions, RLOptions
    from postfit.io import read_jsonl
    from postfit.train import rl

    seen: list[list[int]] = []
    original = rl.static_rollouts

    def spy(trainer, prompt_ids):
        out = original(trainer, prompt_ids)
        seen.extend(out)
        assert len(out) == len(prompt_ids) and all(0 < len(c) <= trainer.max_completion_length for c in out)
        assert all(c[-1] in trainer.eos_token_ids or len(c) == trainer.max_completion_length for c in out)
        return out

    study = load_study("smoke")[0]
    prompts = [Item.from_json(row) for row in read_jsonl(smoke_dir / "data" / "rl.jsonl")][:8]
    model_dir = smoke_dir / "runs" / "pretrained-sft-s0" / "model"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
    opts = RLOptions(steps=2, batch_size=8, num_generations=4, max_completion_length=study.rl.max_completion_length,
                     eval_steps=10, heldout_items=1, logging_steps=1, rollouts="static")  # fmt: skip
    rl.static_rollouts = spy
    try:
        stats = rl.train_rl(model, tokenizer, prompts, prompts[:1], opts, EvalOptions(samples=0, k=[]),
                            tmp_path / "run", seed=0)  # fmt: skip
    finally:
        rl.static_rollouts = original
    assert len(seen) == 2 * 8 and stats["generated_tokens"] == sum(map(len, seen))
    log = [r for r in read_jsonl(tmp_path / "run" / "train_log.jsonl") if "reward" in r]
    assert len(log) == 2 and all(0.0 <= r["reward"] <= 1.0 for r in log)
