"""Real-shaped checkpoints, offline: directories whose tokenizers mimic a Qwen3 base model (ChatML, eos
`<|endoftext|>` != end of turn `<|im_end|>`), a Llama-3 base model (`<|eot_id|>`) and a base model without a chat
template, each given to a study as `model.name_or_path` and run with pretrained and random inits end to end."""

from __future__ import annotations

import json
import statistics

import pytest
import yaml

from conftest import SHAPES
from postfit.io import read_jsonl
from postfit.item import Item

MAX_NEW = 96
END_OF_TURN = {"qwen3": "<|im_end|>", "llama3": "<|eot_id|>", "base": "<|endoftext|>"}


def test_stand_ins_are_shaped_like_the_real_ones(stand_ins):
    from transformers import AutoTokenizer, GenerationConfig

    from postfit.models import end_of_turn_ids, load_tokenizer

    qwen = AutoTokenizer.from_pretrained(stand_ins["qwen3"])
    assert qwen.eos_token == "<|endoftext|>" and "<|im_end|>" in qwen.chat_template
    assert {"<think>", "</think>", "<|im_start|>"} <= set(qwen.get_vocab())
    for shape, path in stand_ins.items():
        gen = GenerationConfig.from_pretrained(path)
        tok = load_tokenizer(path)
        assert gen.eos_token_id == tok.eos_token_id  # names only eos, as real base checkpoints do
        stops = [tok.convert_ids_to_tokens(i) for i in end_of_turn_ids(tok, gen)]
        assert END_OF_TURN[shape] in stops and tok.eos_token in stops, (shape, stops)
    assert AutoTokenizer.from_pretrained(stand_ins["base"]).chat_template is None
    plain = load_tokenizer(stand_ins["base"]).apply_chat_template(
        [{"role": "user", "content": "1 + 2?"}, {"role": "assistant", "content": "3"}], tokenize=False
    )
    assert plain == "Question: 1 + 2?\nAnswer: 3<|endoftext|>\n\n"


def test_sft_targets_end_with_the_end_of_turn_token(stand_ins, tmp_path):
    """What TRL trains on ends each reply with the token generation stops on."""
    from trl import SFTConfig, SFTTrainer

    from postfit.models import build_variant, end_of_turn_ids
    from postfit.train.sft import sft_dataset

    for shape, path in stand_ins.items():
        v = build_variant(path, "pretrained", 0)
        items = [Item(id="t", source="t", domain="math", prompt="What is 1 + 2?", split="train", answer="3",
                      target="1 + 2 = 3. Answer: 3")]  # fmt: skip
        args = SFTConfig(output_dir=str(tmp_path), completion_only_loss=True, report_to=[], max_length=128, bf16=False)
        trainer = SFTTrainer(model=v.model, args=args, train_dataset=sft_dataset(items), processing_class=v.tokenizer)
        row = trainer.train_dataset[0]
        completion = [t for t in row["labels"] if t != -100]  # what the loss is computed on
        stops = end_of_turn_ids(v.tokenizer, v.model.generation_config)
        ends = [i for i, t in enumerate(completion) if t in stops]
        assert ends, (shape, v.tokenizer.decode(completion))
        assert v.tokenizer.decode(completion[ends[-1] + 1 :]).strip() == "", shape  # nothing after it but a newline
        # TRL's rollouts read the model's generation_config: GRPO stops there too.
        assert set(stops) <= set(v.model.generation_config.eos_token_id)


def _study(tmp_path, shape: str, path) -> object:
    study = {
        "name": f"real-{shape}",
        "model": {"name_or_path": str(path)},
        "tasks": {
            "train": [
                {"name": "chain_sum", "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}}
            ],  # fmt: skip
            "train_size": 120,
            "test_size": 32,
            "target": "trace",
        },  # fmt: skip
        "grid": {"inits": ["pretrained", "random"], "recipes": ["none", "sft"], "seeds": [0]},
        "sft": {"steps": 300, "batch_size": 8, "learning_rate": 0.005, "logging_steps": 50},
        "eval": {"batch_size": 32, "max_new_tokens": MAX_NEW, "samples": 0, "k": []},
        "report": {"bootstrap": 100},
    }
    file = tmp_path / f"{shape}.yaml"
    file.write_text(yaml.safe_dump(study))
    return file


def _run(path, out) -> None:
    """`postfit run` in this process (torch is imported already: seconds saved per study)."""
    from postfit.config import load_study
    from postfit.study.runner import run_study

    run_study(load_study(path)[0], out)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_study_on_a_real_shaped_checkpoint_stops_at_the_end_of_turn(stand_ins, shape, tmp_path):
    out = tmp_path / "out"
    _run(_study(tmp_path, shape, stand_ins[shape]), out)
    rows = read_jsonl(out / "results.jsonl")
    acc = {(r["init"], r["recipe"]): r["value"] for r in rows if r["split"] == "id_test" and r["metric"] == "pass@1"}
    for init in ("pretrained", "random"):
        assert acc[(init, "sft")] > acc[(init, "none")], (shape, acc)
        greedy = [s for s in read_jsonl(out / "runs" / f"{init}-sft-s0" / "samples.jsonl") if s["sample"] == -1]
        lengths = [s["completion_tokens"] for s in greedy]
        stopped = sum(s["stopped"] for s in greedy) / len(greedy)
        assert statistics.median(lengths) <= MAX_NEW / 4 and stopped >= 0.9, (shape, init, lengths, stopped)
        saved = json.loads((out / "runs" / f"{init}-sft-s0" / "model" / "generation_config.json").read_text())
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(out / "runs" / f"{init}-sft-s0" / "model")
        assert tok.convert_tokens_to_ids(END_OF_TURN[shape]) in saved["eos_token_id"]  # `postfit eval` stops too
