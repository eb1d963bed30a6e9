"""The context probe (postfit/context_probe.py): answers only the prompt can give, a verifier that accepts nothing
else, an answer log-likelihood that is what it says, a positive control that moves, and a report that calls a probe
whose control does not move unable to measure."""

from __future__ import annotations

import re

import pytest

from postfit.context_probe import FAMILIES, affine, answer_logliks, is_right, make_rows, messages, operator, recall
from postfit.tasks import normalise_question

KS = [0, 1, 2, 4, 8]


@pytest.fixture(scope="module")
def rows():
    return make_rows(list(FAMILIES), KS, 40, seed=5)


def test_recall_answers_come_only_from_the_shots(rows):
    """k > 0: the queried key is shown exactly once, with the answer as its value, and every shown value differs
    (copying another shot is wrong); k = 0: the key was never shown."""
    for r in (r for r in rows if r["task"] == "recall"):
        key = r["question"]
        matches = [a for q, a in r["shots"] if q == key]
        assert len(r["shots"]) == r["k"]
        if r["k"] == 0:
            assert matches == []
            continue
        assert matches == [r["answer"]]
        assert len({a for _, a in r["shots"]}) == r["k"]


def test_operator_answers_follow_the_queries_own_offset(rows):
    """Each query has one fresh offset c: every shot and the answer satisfy a # b = a + b + c, the query's operands
    differ from every shot's, and the offset varies across queries (no prior knowledge gives it)."""
    offsets = set()
    for r in (r for r in rows if r["task"] == "operator"):
        a, b = map(int, re.findall(r"\d+", r["question"]))
        c = int(r["answer"]) - a - b
        offsets.add(c)
        assert 1 <= c <= 9
        for q, ans in r["shots"]:
            x, y = map(int, re.findall(r"\d+", q))
            assert int(ans) == x + y + c and (x, y) != (a, b)
    assert len(offsets) >= 8


def test_affine_answers_follow_the_queries_own_digit(rows):
    """Each query has one fresh digit c: every shot and the answer satisfy a $ b = 10a + c, the query's operands
    differ from every shot's, and c varies across queries (no prior knowledge gives it)."""
    digits = set()
    for r in (r for r in rows if r["task"] == "affine"):
        a, b = map(int, re.findall(r"\d+", r["question"]))
        c = int(r["answer"]) - 10 * a
        digits.add(c)
        assert 0 <= c <= 9 and " $ " in r["question"]
        for q, ans in r["shots"]:
            x, y = map(int, re.findall(r"\d+", q))
            assert int(ans) == 10 * x + c and (x, y) != (a, b)
    assert len(digits) >= 8


def test_rows_are_disjoint_from_the_default_studys_data(rows):
    from postfit.config import load_study
    from postfit.tasks import make_splits

    study = load_study("default")[0]
    texts = {normalise_question(it.prompt) for items in make_splits(study.tasks).values() for it in items}
    for r in rows:
        asked = [r["question"], *(q for q, _ in r["shots"])]
        assert not any(normalise_question(q) in t for q in asked for t in texts), r


def test_the_verifier_accepts_only_the_context_determined_answer(rows):
    for r in (r for r in rows if r["k"] >= 2):
        assert is_right(f"Answer: {r['answer']}", r["answer"])
        assert is_right(f"Let me see.\nAnswer: {r['answer']}", r["answer"])
        for _, other in r["shots"]:
            if other != r["answer"]:
                assert not is_right(f"Answer: {other}", r["answer"])
        assert not is_right(r["answer"], r["answer"])  # no `Answer:` line
        assert not is_right(f"Answer: {r['answer']}0", r["answer"])


def test_rows_are_the_same_whatever_else_is_drawn():
    """Each (query, k) is drawn by its own seed: asking fewer k or fewer items changes no row."""
    full = {(r["item"], r["k"]): r for r in make_rows(["recall"], KS, 10, seed=1)}
    part = make_rows(["recall"], [0, 4], 3, seed=1)
    assert all(full[(r["item"], r["k"])] == r for r in part)
    assert all(f.__name__ in FAMILIES for f in (recall, operator, affine))


def test_answer_loglik_is_the_log_probability_of_the_answer_tokens():
    """Against a direct computation: log-softmax of one unpadded forward pass, summed over the answer's tokens;
    batching with padding changes nothing."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from postfit.evaluation.prompts import prompt_texts
    from postfit.train.pretrain import train_tokenizer

    tok = train_tokenizer("What is ab? Answer: 7. 3 # 4 = ? Answer: 12\n" * 50, 300)
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16)  # fmt: skip
    model = Qwen3ForCausalLM(config)
    sample = make_rows(list(FAMILIES), [0, 2, 8], 3, seed=0)
    got = answer_logliks(model, tok, sample, batch_size=4)
    for r, value in zip(sample, got, strict=True):
        (text,), _ = prompt_texts(tok, [messages(r["shots"], r["question"])])
        prefix = text + "Answer: "
        ids = tok(prefix + r["answer"], add_special_tokens=False)["input_ids"]
        n_prefix = len(tok(prefix, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        expected = sum(float(logp[i - 1, ids[i]]) for i in range(n_prefix, len(ids)))
        assert value == pytest.approx(expected, abs=1e-3)
        assert value < 0


def test_control_init_must_be_an_init_of_the_grid():
    from postfit.config import load_study, parse_study

    config = load_study("default")[0].model_dump(mode="json")
    config["grid"]["inits"] = ["random"]
    with pytest.raises(Exception, match=r"probes\.context\.control\.init: 'pretrained' is not in grid\.inits"):
        parse_study(config, "study.yaml")
    config["probes"]["context"]["control"]["init"] = "random"
    assert parse_study(config, "study.yaml").probes.context.control.init == "random"


def _context_rows(gain: float, seed: int, items: int = 40) -> list[dict]:
    """Synthetic rows: log-likelihood -2.3 with no shots, -2.3 + gain with any (plus item noise)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for family in ("recall", "operator"):
        for i in range(items):
            noise = rng.normal(0, 0.3)
            for k in KS:
                g = gain if family == "recall" else 0.0
                ll = -2.3 + noise + (g if k else 0.0) + rng.normal(0, 0.1)
                out.append({"probe": "context", "task": family, "item": f"{family}/{i}", "k": k, "sample": -1,
                            "loglik": ll, "correct": bool(k and g > 0.5 and i % 2)})  # fmt: skip
    return out


def test_report_calls_a_family_whose_control_does_not_move_unable_to_measure():
    """The control gains on recall but not on operator: recall gets comparisons (pre-trained gains more than
    random), operator only its shown rows and the words 'not able to measure at this scale'."""
    from types import SimpleNamespace

    from postfit.report.blocks import Para, Table
    from postfit.report.context import context_blocks, context_comparisons
    from postfit.report.results import RunResults

    groups = {(init, label): [RunResults(init, label, s, probes=_context_rows(gain, 10 * s + (init == "random")))
                              for s in (0, 1)]
              for init, label, gain in (("pretrained", "none", 0.8), ("random", "none", 0.1))}  # fmt: skip
    study = SimpleNamespace(n_boot=300, ci=0.95, control=_context_rows(1.5, 99))
    comps = context_comparisons(study, groups)
    assert {c.split for c in comps} == {"recall"}
    (diff,) = [c for c in comps if c.subject == "pre-trained − random"]
    assert diff.supported and diff.est[0] == pytest.approx(0.7, abs=0.15) and diff.unit == "nats"
    assert diff.verdict() == "pre-trained higher"
    blocks = context_blocks(study, groups)
    words = " ".join(b.text for b in blocks if isinstance(b, Para))
    assert "recall: the positive control gains +1.5" in words and "the probe can measure at this scale" in words
    assert "operator: the positive control gains" in words and "not able to measure at this scale" in words
    (table,) = [b for b in blocks if isinstance(b, Table)]
    assert [row[0] for row in table.rows] == ["pretrained (before)", "random (before)", "positive control"]
    study.control = []
    assert context_comparisons(study, groups) == []  # no control: nothing can be claimed
    assert "no positive control was trained" in " ".join(b.text for b in context_blocks(study, groups)
                                                          if isinstance(b, Para))  # fmt: skip


@pytest.mark.slow
def test_the_positive_control_shows_a_gain(smoke_dir, tmp_path):
    """The control as a study trains it, on the smoke study's pre-trained nano base: its gain in answer
    log-likelihood on each default family has an interval above zero. That base saw 150k tokens (the default
    study's 2M), and needs 600 control steps where the default study's needs 300 (measured on recall and affine:
    +0.25 [+0.09, +0.40] and -0.03 [-0.13, +0.08] nats after 300 steps, +5.6 [+4.4, +6.8] and +6.5 [+5.4, +7.6]
    after 600)."""
    from types import SimpleNamespace

    from postfit.config import load_study
    from postfit.config.scaling import ContextProbe
    from postfit.context_probe import ensure_control
    from postfit.models import build_variant
    from postfit.report.context import control_verdicts

    study = load_study("smoke")[0]
    spec = ContextProbe(items=32, control={"steps": 600})
    variant = build_variant(smoke_dir / "base" / "pretrained", "pretrained", spec.seed)
    rows = ensure_control(spec, study.eval, variant, tmp_path / "control.jsonl", tmp_path / "work", spec.seed)
    assert (tmp_path / "control.jsonl").exists() and not (tmp_path / "work").exists()
    verdicts = control_verdicts(SimpleNamespace(n_boot=500, ci=0.95, control=rows), {})
    assert set(verdicts) == {"recall", "affine"}
    for (_, lo, _), n in verdicts.values():
        assert n == 32 and lo > 0, verdicts
