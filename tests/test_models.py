"""postfit's own tokenizer and pre-training; pre-trained and random variants share the architecture."""

from __future__ import annotations

import pytest
import torch

from postfit.config import PretrainConfig
from postfit.models import build_variant
from postfit.train.pretrain import ensure_base


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    cfg = PretrainConfig(tokens=30_000, seq_len=64, batch_size=8, tokenizer_chars=200_000, checkpoint_steps=1000)
    return ensure_base(cfg, "nano", "qwen3", tmp_path_factory.mktemp("base"), need_weights=True)


def test_plain_transformers_loads_the_pretrained_model(base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base["pretrained"])
    model = AutoModelForCausalLM.from_pretrained(base["pretrained"])
    assert model.config.model_type == "qwen3" and model.config.vocab_size == len(tok)
    # Digits are single tokens, so numbers are spelled out digit by digit.
    assert tok.tokenize("x = 12345")[-5:] == list("12345")
    messages = [{"role": "user", "content": "1 + 2 ="}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|user|>1 + 2 =<|end|><|assistant|>"
    assert tok.decode(tok("def f(x):\n    return 42")["input_ids"]) == "def f(x):\n    return 42"


def test_pretraining_lowered_the_loss(base):
    import json

    log = [json.loads(line) for line in (base["pretrained"].parent / "pretrain_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) >= 5 and losses[-1] < 0.8 * losses[0]


def test_pretraining_records_its_held_out_loss_against_the_unigram_entropy(base):
    """meta.json: the held-out corpus blocks' loss before (random init) and after pre-training, and the training
    tokens' unigram entropy; pre-training beats the random init there, which sits near ln(vocabulary)."""
    import json
    import math

    meta = json.loads((base["pretrained"].parent / "meta.json").read_text())
    vocab = json.loads((base["pretrained"] / "config.json").read_text())["vocab_size"]
    assert meta["heldout_tokens"] > 0
    assert meta["heldout_loss_pretrained"] < meta["heldout_loss_random"]
    assert abs(meta["heldout_loss_random"] - math.log(vocab)) < 0.5
    assert 0 < meta["unigram_entropy"] < math.log(vocab)


def test_unigram_entropy_and_held_out_blocks(base):
    import math

    from transformers import AutoTokenizer

    from postfit.train.pretrain import pack, unigram_entropy

    assert unigram_entropy([[0, 1], [1, 0]]) == pytest.approx(math.log(2))
    assert unigram_entropy([[5, 5, 5]]) == 0
    tok = AutoTokenizer.from_pretrained(base["random"])
    docs = [f"doc {i} " + "word " * 40 for i in range(200)]
    train, held = pack(tok, docs, 16, 1600)
    ids = [t for d in tok(docs, add_special_tokens=False)["input_ids"] for t in [*d, tok.pad_token_id]]
    assert held and [t for b in held for t in b] == ids[len(ids) - 16 * len(held) :]  # the corpus's end
    assert len(train) == 100 and [t for b in train for t in b] == ids[:1600]  # the rest, from the start


def test_variants_share_architecture_not_weights(base):
    pre = build_variant(base["pretrained"], "pretrained", seed=0)
    rnd = build_variant(base["random"], "random", seed=0)
    assert pre.config_hash == rnd.config_hash and pre.params == rnd.params > 0
    pre_w, rnd_w = pre.model.state_dict(), rnd.model.state_dict()
    assert {k: v.shape for k, v in pre_w.items()} == {k: v.shape for k, v in rnd_w.items()}
    differing = [k for k in pre_w if not torch.equal(pre_w[k], rnd_w[k])]
    # Every weight matrix differs (norm weights start at 1.0 in both, so they may coincide).
    assert all(k in differing for k in pre_w if pre_w[k].dim() == 2)


def test_random_init_is_seeded(base):
    a = build_variant(base["random"], "random", seed=3).model.state_dict()
    b = build_variant(base["random"], "random", seed=3).model.state_dict()
    c = build_variant(base["random"], "random", seed=4).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_missing_hub_model_is_a_clear_error(monkeypatch):
    from postfit.errors import UserError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="model.name_or_path: 'no-such-org/no-such-model' is neither a local"):
        build_variant("no-such-org/no-such-model", "pretrained", seed=0)


def test_llama_arch_builds_the_same_shapes(base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postfit.models import preset_config

    tok = AutoTokenizer.from_pretrained(base["random"])
    qwen = AutoModelForCausalLM.from_config(preset_config("nano", "qwen3", tok, 64))
    llama = AutoModelForCausalLM.from_config(preset_config("nano", "llama", tok, 64))
    assert llama.config.model_type == "llama" and llama.config.eos_token_id == tok.eos_token_id
    assert llama.config.hidden_size == qwen.config.hidden_size and llama.config.vocab_size == len(tok)


def test_base_stores_the_held_out_blocks_pre_training_scored(base):
    """base/heldout.jsonl holds the blocks meta.json's held-out loss was measured on, so runs score the same text
    without reading the corpus again."""
    import json

    from transformers import AutoModelForCausalLM

    from postfit.evaluation.forgetting import read_blocks
    from postfit.layout import BaseDir
    from postfit.train.pretrain import heldout_loss

    layout = BaseDir(base["pretrained"].parent)
    meta, blocks = json.loads(layout.meta.read_text()), read_blocks(layout.heldout)
    assert blocks and sum(map(len, blocks)) == meta["heldout_tokens"] and {len(b) for b in blocks} == {64}
    model = AutoModelForCausalLM.from_pretrained(base["pretrained"])
    assert round(heldout_loss(model, blocks), 4) == meta["heldout_loss_pretrained"]
