"""SFT examples from long reasoning traces (postfit.data.traces), with postfit's own byte-level BPE tokenizer and chat
template, on items mapped from the dataset fixtures (tests/fixtures/datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from postfit.data.sources import SOURCES
from postfit.data.traces import sft_examples, to_messages, tokenize_conversation
from postfit.item import Item

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


@pytest.fixture(scope="module")
def tokenizer():
    from postfit.train.pretrain import train_tokenizer

    text = "Find all real x such that 2^{x+1} = 32. We need x + 1 = 5, so x = 4. The answer is \\boxed{4}. " * 50
    return train_tokenizer(text, vocab_size=400)


def fixture_items(name: str) -> list[Item]:
    """The fixture rows read by `datasets` and mapped exactly as the hub path maps them."""
    import datasets

    from postfit.data.hub import map_rows

    spec = SOURCES[name]
    files = sorted(str(p) for p in (FIXTURES / spec.path.replace("/", "__")).rglob("train-*.jsonl"))
    ds = datasets.load_dataset("json", data_files=files, split="train")
    return map_rows(name, spec, ds, split="train")


def test_only_verified_traces_are_kept_where_the_dataset_marks_them(tokenizer):
    items = fixture_items("openr1-math")  # math-verify marks: [T, F], [F, T], [F]
    rows, counts = sft_examples(items, tokenizer, max_length=100_000, use="traces")
    assert counts == {"items": 3, "candidates": 5, "filtered_incorrect": 3, "unmarked": 0, "kept": 2,
                      "truncated": 0, "dropped": 0}  # fmt: skip
    kept = {r["id"] for r in rows}
    assert kept == {f"{items[0].id}#0", f"{items[1].id}#1"}
    # the kept texts are the generations marked correct, rendered with the tokenizer's own template
    full, _ = tokenize_conversation(
        tokenizer,
        [{"role": "user", "content": items[1].prompt}, {"role": "assistant", "content": items[1].traces[1]}],
    )
    assert rows[1]["input_ids"] == full
    _, counts = sft_examples(items, tokenizer, max_length=100_000, use="traces", only_correct=False)
    assert counts["kept"] == 5 and counts["filtered_incorrect"] == 0


def test_messages_use_the_conversation_and_its_mark(tokenizer):
    items = fixture_items("openr1-math")
    rows, counts = sft_examples(items, tokenizer, max_length=100_000)  # auto: messages, since the items have them
    assert counts["candidates"] == 3 and counts["filtered_incorrect"] == 1 and counts["kept"] == 2
    text = tokenizer.decode(rows[0]["input_ids"])
    assert text == tokenizer.apply_chat_template(items[0].messages, tokenize=False)
    assert text.startswith("<|user|>Find all real $x$") and text.endswith("<|end|>")


def test_loss_covers_exactly_the_final_reply(tokenizer):
    items = fixture_items("openthoughts")  # system + user + assistant, from ShareGPT-style turns
    rows, counts = sft_examples(items, tokenizer, max_length=100_000)
    assert counts["kept"] == 3 and counts["unmarked"] == 3  # OpenThoughts marks nothing
    for row, item in zip(rows, items, strict=True):
        ids, mask = row["input_ids"], row["completion_mask"]
        assert len(ids) == len(mask) and mask == sorted(mask)  # zeros, then ones
        reply = [t for t, m in zip(ids, mask, strict=True) if m]
        prompt = [t for t, m in zip(ids, mask, strict=True) if not m]
        assert tokenizer.decode(reply) == item.messages[-1]["content"] + "<|end|>"
        assert tokenizer.decode(prompt).startswith("<|system|>Your role as an assistant")
        assert tokenizer.decode(prompt).endswith("<|end|><|assistant|>")


def test_length_policies_report_counts(tokenizer):
    items = fixture_items("openr1-math")
    lengths = sorted(len(r["input_ids"]) for r in sft_examples(items, tokenizer, max_length=10**6, only_correct=False,
                                                                use="traces")[0])  # fmt: skip
    cut = lengths[2]  # two traces are longer than this
    rows, counts = sft_examples(items, tokenizer, max_length=cut, policy="drop", only_correct=False, use="traces")
    assert counts["kept"] == 3 and counts["dropped"] == 2 and counts["truncated"] == 0
    assert all(len(r["input_ids"]) <= cut for r in rows)
    full = {r["id"]: r for r in sft_examples(items, tokenizer, max_length=10**6, only_correct=False, use="traces")[0]}
    rows, counts = sft_examples(items, tokenizer, max_length=cut, policy="truncate", only_correct=False, use="traces")
    assert counts["kept"] == 5 and counts["truncated"] == 2 and counts["dropped"] == 0
    for r in rows:
        assert r["input_ids"] == full[r["id"]]["input_ids"][:cut] and len(r["completion_mask"]) == len(r["input_ids"])
    # a prompt that alone fills max_length leaves nothing to learn: dropped even when truncating
    short = min(sum(1 for m in r["completion_mask"] if m == 0) for r in full.values())
    _, counts = sft_examples(items, tokenizer, max_length=short, policy="truncate", only_correct=False, use="traces")
    assert counts["dropped"] == 5 and counts["kept"] == 0


def test_items_without_messages_train_on_their_traces(tokenizer):
    items = fixture_items("gsm8k-train")
    rows, counts = sft_examples(items, tokenizer, max_length=10_000)
    assert counts["kept"] == 2 and counts["unmarked"] == 2
    assert tokenizer.decode(rows[0]["input_ids"]).endswith("The final answer is $\\boxed{27}$.<|end|>")


def test_bad_arguments_and_turns_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="policy must be one of"):
        sft_examples([], tokenizer, max_length=8, policy="clip")
    with pytest.raises(ValueError, match="turn 1: expected a role"):
        to_messages([{"from": "human", "value": "hi"}, {"from": "narrator", "value": "x"}])
    assert to_messages([{"from": "gpt", "value": "a"}], system="s") == [
        {"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning")
def test_trl_sft_trainer_masks_the_prompt(tokenizer, tmp_path):
    """The rows are TRL's pre-tokenised form: its labels are -100 on the prompt and the token ids on the reply."""
    from datasets import Dataset
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from trl import SFTConfig, SFTTrainer

    rows, _ = sft_examples(fixture_items("numina-cot"), tokenizer, max_length=4096)
    model = Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         head_dim=16))  # fmt: skip
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, completion_only_loss=True, report_to=[], use_cpu=True,
                     max_length=4096)  # fmt: skip
    data = Dataset.from_list([{k: r[k] for k in ("input_ids", "completion_mask")} for r in rows])
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    prepared = trainer.train_dataset[0]
    n_prompt = rows[0]["completion_mask"].count(0)
    assert prepared["labels"] == [-100] * n_prompt + rows[0]["input_ids"][n_prompt:]
