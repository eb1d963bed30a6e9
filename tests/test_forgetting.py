"""Forgetting on the held-out pre-training corpus: the per-block loss and KL from the starting model
(postfit.evaluation.forgetting), and the held-out blocks base/ stores for runs (postfit.train.pretrain)."""

from __future__ import annotations

import pytest
import torch

from postfit.evaluation.forgetting import forgetting_rows, read_blocks
from postfit.train.pretrain import HELDOUT_BLOCKS, heldout_blocks, heldout_loss, pack, train_tokenizer

SEQ = 16


def _model(seed: int = 0):
    from transformers import AutoModelForCausalLM, Qwen3Config

    sizes = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    config = Qwen3Config(vocab_size=48, intermediate_size=32, max_position_embeddings=SEQ, **sizes)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


@pytest.fixture(scope="module")
def blocks() -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 48, (10, SEQ), generator=g).tolist()  # 10 blocks: a last batch of 2 after 8


def test_loss_is_heldout_loss_and_a_model_is_at_kl_zero_from_itself(blocks) -> None:
    model = _model()
    rows = forgetting_rows(model, blocks, start=_model())  # the same weights, built again: as the runner does
    assert [r["block"] for r in rows] == list(range(10)) and {r["tokens"] for r in rows} == {SEQ - 1}
    assert sum(r["loss"] for r in rows) / len(rows) == pytest.approx(heldout_loss(model, blocks), abs=1e-5)
    assert {r["kl"] for r in rows} == {0.0}
    assert forgetting_rows(model, blocks) == rows  # no start (a `none` run): KL 0 without computing it


def test_a_perturbed_copy_is_at_positive_kl_which_grows_with_the_change(blocks) -> None:
    start = _model()
    small, large = _model(), _model()
    with torch.no_grad():
        for scale, m in ((0.01, small), (0.1, large)):
            for p in m.parameters():
                p.add_(scale * torch.randn_like(p))
    kl_small = [r["kl"] for r in forgetting_rows(small, blocks, start)]
    kl_large = [r["kl"] for r in forgetting_rows(large, blocks, start)]
    assert min(kl_small) > 0 and sum(kl_large) > 10 * sum(kl_small)
    # KL(p_start || p_final) by hand on the first block, the direction the rows state.
    ids = torch.tensor(blocks[:1])
    with torch.no_grad():
        p = start(input_ids=ids).logits[0, :-1].softmax(-1)
        q = large(input_ids=ids).logits[0, :-1].softmax(-1)
    assert kl_large[0] == pytest.approx(float((p * (p.log() - q.log())).sum(-1).mean()), rel=1e-4)


def test_stored_heldout_blocks_are_packs_read_from_the_corpus_end(tmp_path) -> None:
    """heldout_blocks tokenizes only the corpus's end yet gives pack's blocks; short corpora hold out a tenth."""
    from postfit.io import write_jsonl

    docs = [f"def f{i}(x):\n    return x * {i} + {i * 7}\n" for i in range(3000)]
    tok = train_tokenizer("\n\n".join(docs[:300]), 300)
    held = heldout_blocks(tok, docs, SEQ)
    assert len(held) == HELDOUT_BLOCKS and held == pack(tok, docs, SEQ, 1000)[1]
    short = docs[:40]
    assert 0 < len(heldout_blocks(tok, short, SEQ)) < HELDOUT_BLOCKS
    assert heldout_blocks(tok, short, SEQ) == pack(tok, short, SEQ, 1000)[1]
    write_jsonl(tmp_path / "heldout.jsonl", [{"block": i, "input_ids": b} for i, b in reversed(list(enumerate(held)))])
    assert read_blocks(tmp_path / "heldout.jsonl") == held


@pytest.mark.slow
def test_every_run_of_a_study_stores_its_forgetting(smoke_dir) -> None:
    """Each run's forgetting.jsonl scores every stored held-out block, recorded in run.json like its samples; the
    untrained runs score what pre-training measured with KL 0, trained runs moved away from their start (KL > 0)."""
    from postfit.io import read_json, read_jsonl
    from postfit.layout import StudyDir

    layout = StudyDir(smoke_dir)
    blocks, meta = read_blocks(layout.base.heldout), read_json(layout.base.meta)
    assert len(blocks) == HELDOUT_BLOCKS and sum(map(len, blocks)) == meta["heldout_tokens"]
    runs = layout.run_dirs()
    assert len(runs) == 6
    for d in runs:
        rows, recipe = read_jsonl(d.forgetting), read_json(d.run_json)["recipe"]
        assert [r["block"] for r in rows] == list(range(len(blocks))), d.name
        assert "forgetting.jsonl" in read_json(d.run_json)["files"]
        loss = sum(r["loss"] for r in rows) / len(rows)
        if recipe == "none":
            assert {r["kl"] for r in rows} == {0.0}, d.name
            expected = meta["heldout_loss_pretrained" if d.name.startswith("pretrained") else "heldout_loss_random"]
            assert loss == pytest.approx(expected, abs=1e-3), d.name
        else:
            assert min(r["kl"] for r in rows) > 0, d.name
    md = (smoke_dir / "report.md").read_text()
    assert "## Forgetting: the pre-training corpus after post-training" in md
    assert "| loss increase, pretrained | sft+rl | pre-training corpus |" in md
