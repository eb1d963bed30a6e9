"""In-context probe prompts never give the query away; the probe schema rejects families the study trains on."""

from __future__ import annotations

from dataclasses import replace

import pytest

from postfit.config import parse_study
from postfit.config.scaling import ICLProbe, ProbesConfig, ProbeTask
from postfit.errors import UserError
from postfit.item import Item
from postfit.probes import icl_prompts, make_probe_data
from postfit.tasks import normalise_question
from postfit.verify import score

# gcd of small numbers is 1 most of the time, letter_counting's answers are 0-4: answers collide all the time,
# so a prompt builder that only avoided the query itself would leak answers here.
TASKS = [ProbeTask(name="gcd", config={"min_numbers": 2, "max_numbers": 2, "min_value": 1, "max_value": 30}),
         ProbeTask(name="letter_counting", config={})]  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return make_probe_data(ProbesConfig(icl=ICLProbe(tasks=TASKS, items=30, pool=150)))["icl"]


def test_no_prompt_contains_its_query_or_its_answer(data):
    for task, d in data.items():
        queries, pool = {q.id: q for q in d["queries"]}, {s.id: s for s in d["pool"]}
        assert not {normalise_question(q.question) for q in queries.values()} & {
            normalise_question(s.question) for s in pool.values()
        }, "shot pool and queries share a question"
        rows = icl_prompts(d["queries"], d["pool"], [0, 1, 2, 4, 8, 16], seed=0)
        assert len(rows) == 6 * len(queries)
        for row in rows:
            q, msgs = queries[row["item"]], row["messages"]
            assert len(msgs) == 2 * row["k"] + 1 and msgs[-1] == {"role": "user", "content": q.prompt}
            assert [m["role"] for m in msgs[:-1]] == ["user", "assistant"] * row["k"]
            assert all(s in pool for s in row["shots"]) and len(set(row["shots"])) == row["k"]
            for m in msgs[:-1]:
                # Not the query's question, not its answer in any form the verifier accepts.
                assert normalise_question(q.question) not in normalise_question(m["content"]), (task, row)
                if m["role"] == "assistant":
                    assert score(q, m["content"])[1] == 0.0, (task, q.answer, m["content"])
                    assert m["content"].removeprefix("Answer:").strip() != q.answer.strip()
        # Nested shots: the k-shot prompt extends the smaller ones, for every query.
        by_item: dict[str, dict[int, list[str]]] = {}
        for row in rows:
            by_item.setdefault(row["item"], {})[row["k"]] = row["shots"]
        for shots in by_item.values():
            assert all(shots[k] == shots[16][:k] for k in shots)


def test_answers_collide_often_so_the_filter_is_doing_work(data):
    d = data["gcd"]
    colliding = sum(s.answer == q.answer for q in d["queries"] for s in d["pool"])
    assert colliding > 0.2 * len(d["queries"]) * len(d["pool"])


def test_planted_leaks_are_never_used_as_shots(data):
    d = data["gcd"]
    q = d["queries"][0]
    clones = [replace(q, id=f"icl_pool/clone{i}") for i in range(20)]  # the query itself, under other ids
    same_answer = [s for s in d["pool"] if s.answer == q.answer]
    rows = icl_prompts([q], clones + same_answer + d["pool"], [16], seed=3)
    used = set(rows[0]["shots"])
    assert not used & {c.id for c in clones} and not used & {s.id for s in same_answer}
    with pytest.raises(UserError, match="probes.icl: only 0 shots"):
        icl_prompts([q], clones + same_answer, [1], seed=0)


def test_schema_rejects_probe_families_the_study_trains_on():
    base = {"name": "x", "model": {"preset": "nano"}, "pretrain": {"tokens": 1000},
            "tasks": {"train": [{"name": "chain_sum"}], "ood_family": [{"name": "basic_arithmetic"}]}}  # fmt: skip
    ok = parse_study({**base, "probes": {"icl": {"tasks": [{"name": "gcd"}]}}}, "s.yaml")
    assert ok.probes.icl.k == [0, 1, 2, 4, 8, 16] and ok.probes.adapt is None
    for probes, match in [
        ({"icl": {"tasks": [{"name": "basic_arithmetic"}]}}, "post-training or ood_family tasks"),
        ({"adapt": {"task": {"name": "chain_sum"}}}, "already used by the study"),
        ({"icl": {"tasks": [{"name": "gcd"}]}, "adapt": {"task": {"name": "gcd"}}}, "already used by the study"),
        ({"icl": {"tasks": [{"name": "no_such_task"}]}}, "unknown reasoning-gym task"),
        ({"adapt": {"task": {"name": "spell_backward"}, "test_size": 1}}, "probes.adapt.test_size"),
    ]:
        with pytest.raises(UserError, match=match):
            parse_study({**base, "probes": probes}, "s.yaml")
    with pytest.raises(UserError, match="add `none` to grid.recipes"):
        parse_study({**base, "grid": {"recipes": ["sft"]}, "probes": {"icl": {"tasks": [{"name": "gcd"}]}}}, "s.yaml")


@pytest.mark.slow
def test_adaptation_trains_a_model_a_trainer_has_trained(smoke_dir, tmp_path):
    """The adaptation probe must fine-tune its copy even of a model fresh out of SFT (as the runner passes it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postfit.config import load_study
    from postfit.config.scaling import AdaptProbe
    from postfit.io import read_jsonl
    from postfit.probes import run_adapt
    from postfit.train.sft import train_sft

    study = load_study("smoke")[0]
    path = smoke_dir / "runs" / "random-sft-s0" / "model"
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    train = [Item.from_json(row) for row in read_jsonl(smoke_dir / "data" / "train.jsonl")][:16]
    train_sft(model, tok, train, study.sft.model_copy(update={"steps": 2}), tmp_path / "sft", 0)  # now "trained"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = AdaptProbe(task=ProbeTask(name="letter_counting", config={}), steps=[0, 10], train_size=64,
                      test_size=16, learning_rate=0.005)  # fmt: skip
    data = make_probe_data(ProbesConfig(adapt=spec))["adapt"]
    rows = run_adapt(model, tok, data, spec, study.eval, tmp_path / "adapt", 0)
    completions = {m: [r["completion"] for r in rows if r["m"] == m] for m in (0, 10)}
    assert completions[0] != completions[10], "10 steps of SFT on the new task changed nothing"
    # Each row has its answer's log-likelihood after its own question and after another's (the question gain).
    loglik = {m: [r["loglik"] for r in rows if r["m"] == m] for m in (0, 10)}
    assert all(isinstance(r["loglik"], float) and isinstance(r["loglik_other"], float) for r in rows)
    assert sum(loglik[10]) > sum(loglik[0]), "10 steps on the task did not make its answers likelier"
    assert any(r["loglik"] != r["loglik_other"] for r in rows)
    assert all(torch_equal(before[k], v) for k, v in model.state_dict().items()), "the probe must train a copy"


@pytest.mark.slow
def test_question_gain_moves_when_a_real_model_adapts(smoke_dir, tmp_path):
    """The smoke study's pre-trained base adapting 160 steps to spelling words backwards: accuracy stays at 0,
    but its answers become likelier after their own question than after another's (measured: +0.18 nats on
    average, [+0.03, +0.36] over items), where before adapting the two are equal (0.00)."""
    from postfit.config import load_study
    from postfit.config.scaling import AdaptProbe
    from postfit.models import build_variant
    from postfit.probes import run_adapt

    study = load_study("smoke")[0]
    variant = build_variant(smoke_dir / "base" / "pretrained", "pretrained", 0)
    spec = AdaptProbe(task=ProbeTask(name="spell_backward", config={"min_word_len": 3, "max_word_len": 6}),
                      steps=[0, 160], train_size=1000, test_size=48, learning_rate=0.003)  # fmt: skip
    rows = run_adapt(variant.model, variant.tokenizer, make_probe_data(ProbesConfig(adapt=spec))["adapt"], spec,
                     study.eval, tmp_path / "adapt", 0)  # fmt: skip
    gain = {m: sum(r["loglik"] - r["loglik_other"] for r in rows if r["m"] == m) / 48 for m in (0, 160)}
    assert abs(gain[0]) < 0.05 and gain[160] > 0.08, gain


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_adaptation_auc_is_the_mean_accuracy_under_the_curve():
    """Trapezoids over m = 0, 4, 16, divided by 16; an item missing at one m is left out."""
    from postfit.report.probes import adaptation_auc

    by_m = {0: {"a": 0.0, "b": 1.0, "c": 1.0}, 4: {"a": 1.0, "b": 1.0}, 16: {"a": 1.0, "b": 0.0, "c": 1.0}}
    assert adaptation_auc(by_m) == pytest.approx({"a": (2 + 12) / 16, "b": (4 + 6) / 16})
    assert adaptation_auc({8: {"a": 1.0}}) == {"a": 1.0}


def test_probe_comparisons_state_in_context_gain_and_adaptation_speed_with_intervals():
    """Synthetic probe rows for two seeds: pre-trained adapts on every item by m=10, random init never; neither
    gains from shots. Adaptation names pre-trained; the in-context rows, all zero with zero-width intervals, collapse
    into one row that says the probe cannot measure, and the headline says so instead of calling it a finding."""
    from types import SimpleNamespace

    from postfit.report.headline import comparisons_table, headline
    from postfit.report.probes import probe_comparisons
    from postfit.report.results import RunResults

    def rows(adapts: bool) -> list[dict]:
        out = [{"probe": "icl", "k": k, "task": "gcd", "item": str(i), "sample": -1, "correct": i % 3 == 0}
               for k in (0, 4) for i in range(30)]  # fmt: skip
        out += [{"probe": "adapt", "m": m, "task": "lc", "item": str(i), "sample": -1,
                 "correct": adapts and m > 0 and i % 5 > 0} for m in (0, 10, 40) for i in range(30)]  # fmt: skip
        return out

    infos = [RunResults(init, "sft", seed, probes=rows(init == "pretrained"))
             for init in ("pretrained", "random") for seed in (0, 1)]  # fmt: skip
    comps = probe_comparisons(SimpleNamespace(n_boot=200, ci=0.95), infos)
    icl = [c for c in comps if c.kind == "in-context"]
    zero = (0.0, 0.0, 0.0)
    assert [(c.subject, c.est, c.n, c.seeds) for c in icl] == [
        ("pretrained sft (after)", zero, 30, 2), ("random sft (after)", zero, 30, 2)]  # fmt: skip
    (adapt,) = [c for c in comps if c.kind == "adaptation"]
    # AUC per adapting item: (10 * 0.5 + 30 * 1) / 40 = 0.875; 24 of 30 items adapt: 70.0 pp on average.
    assert adapt.text().startswith("+70.0 [") and adapt.verdict() == "pre-trained higher" and adapt.n == 30
    table = comparisons_table(comps).rows
    assert table[0][0] == "in-context gain, k=4 − k=0 shots" and table[0][-1].startswith("unable to measure")
    assert len(table) == 2 and table[1][-1] == "pre-trained higher"
    (sentence,) = headline(comps)
    assert sentence.startswith("After sft, pre-trained adapts faster to a new task (adapt: lc): pre-trained minus "
                               "random +70.0 [")  # fmt: skip
    assert "in-context" not in sentence  # a probe that cannot move is no finding


def test_adaptation_states_steps_to_threshold_and_the_constant_answer_baseline():
    """Synthetic adaptation rows: pre-trained reaches 50% by m=10, random only by m=40; the commonest training
    answer ('2') is right on 40% of the test items, and a study where every model ends at or below that is called
    unable to measure."""
    from types import SimpleNamespace

    from postfit.report.probes import _threshold_lines
    from postfit.report.results import RunResults

    def rows(by: int, top: float) -> list[dict]:
        return [{"probe": "adapt", "m": m, "task": "count_bits", "item": str(i), "sample": -1,
                 "correct": m >= by and i < top * 50, "reference": "2" if i % 5 < 2 else "3", "majority": "2"}
                for m in (0, 10, 40) for i in range(50)]  # fmt: skip

    study = SimpleNamespace(n_boot=300, ci=0.95, config={"probes": {"adapt": {"threshold": 0.5}}})
    groups = {(init, "sft"): [RunResults(init, "sft", s, probes=rows(by, 0.8)) for s in (0, 1)]
              for init, by in (("pretrained", 10), ("random", 40))}  # fmt: skip
    lines = _threshold_lines(study, groups, [0, 10, 40])
    assert lines[0] == "pretrained sft (after): steps to 50% accuracy 10 [10, 10]."
    assert lines[1] == "random sft (after): steps to 50% accuracy 40 [40, 40]."
    assert lines[2] == "Always answering the commonest training answer ('2') scores 40%."
    assert len(lines) == 3
    low = {g: [RunResults(*g, s, probes=rows(10, 0.4)) for s in (0, 1)] for g in groups}
    assert "cannot measure learning at this scale" in _threshold_lines(study, low, [0, 10, 40])[-1]
    assert "> 40" in _threshold_lines(study, low, [0, 10, 40])[0]


def test_adaptation_that_ends_at_a_constant_answer_gets_no_comparison():
    """Pre-trained reaches the constant answer's score sooner than random init, but no model gets past it: the
    AUC difference would only say which found the commonest answer first, so it is not a comparison row."""
    from types import SimpleNamespace

    from postfit.report.probes import _statements, adapts_beyond_constant, probe_comparisons
    from postfit.report.results import RunResults

    def rows(by: int, share: float) -> list[dict]:
        return [{"probe": "adapt", "m": m, "task": "count_bits", "item": str(i), "sample": -1,
                 "correct": m >= by and i < share * 50, "reference": "2" if i < 20 else "3", "majority": "2"}
                for m in (0, 10, 40) for i in range(50)]  # fmt: skip

    study = SimpleNamespace(n_boot=200, ci=0.95)
    flat = [RunResults(init, "sft", s, probes=rows(by, 0.4)) for init, by in (("pretrained", 10), ("random", 40))
            for s in (0, 1)]  # fmt: skip
    assert not adapts_beyond_constant({(r.init, r.label): [r] for r in flat}, [0, 10, 40])
    # One sentence for all (each model's accuracy is in the table), not a sentence per model and step.
    groups = {(i, "sft"): [r for r in flat if r.init == i] for i in ("pretrained", "random")}
    (para,) = _statements(SimpleNamespace(n_boot=200, ci=0.95, config={}), groups,
                          [("adapt", "m", m) for m in (0, 10, 40)], [])  # fmt: skip
    assert para.text == ("Always answering the commonest training answer ('2') scores 40%. Every model ends at or "
                         "below it after m=40 steps: adaptation accuracy cannot measure learning at this scale, and "
                         "its differences are shown in the table, not compared.")  # fmt: skip
    assert [c for c in probe_comparisons(study, flat) if c.kind == "adaptation"] == []
    learns = [RunResults(init, "sft", s, probes=rows(by, 0.8)) for init, by in (("pretrained", 10), ("random", 40))
              for s in (0, 1)]  # fmt: skip
    (adapt,) = [c for c in probe_comparisons(study, learns) if c.kind == "adaptation"]
    assert adapt.supported and adapt.verdict() == "pre-trained higher"


def _gain_rows(gain_at: dict[int, float], items: int = 40) -> list[dict]:
    """Adaptation rows whose question gain (loglik - loglik_other) is `gain_at[m]` give or take 0.1, never right."""
    return [{"probe": "adapt", "m": m, "task": "spell_backward", "item": str(i), "sample": -1, "correct": False,
             "reference": f"w{i}", "majority": "w0", "loglik": -10.0 + g + (0.1 if i % 2 else -0.1),
             "loglik_other": -10.0} for m, g in gain_at.items() for i in range(items)]  # fmt: skip


def test_question_gain_compares_the_inits_only_where_the_probe_moves():
    """Accuracy stays at zero (no accuracy comparison: no model passes the constant answer), but pre-trained's
    question gain reaches 1 nat by m=40 and random's 0.2 by m=160: the probe moves, pre-trained minus random in
    question-gain AUC is a nats row naming pre-trained, and the section gives steps to the gain threshold. Where
    every gain is zero, the section says the probe cannot measure and nothing is compared."""
    from types import SimpleNamespace

    from postfit.report.blocks import Para, Table
    from postfit.report.probes import gain_blocks, gain_moves, probe_comparisons
    from postfit.report.results import RunResults

    study = SimpleNamespace(n_boot=300, ci=0.95, config={"probes": {"adapt": {"gain_threshold": 0.5}}})
    ms = [0, 10, 40, 160]
    curves = {"pretrained": {0: 0.0, 10: 0.3, 40: 1.0, 160: 1.0}, "random": {0: 0.0, 10: 0.0, 40: 0.0, 160: 0.2}}
    infos = [RunResults(init, "sft", s, probes=_gain_rows(curves[init])) for init in curves for s in (0, 1)]
    groups = {(i.init, i.label): [j for j in infos if j.init == i.init] for i in infos}
    before = [RunResults("pretrained", "none", s, probes=_gain_rows(dict.fromkeys(ms, 0.0))) for s in (0, 1)]
    assert gain_moves(study, groups, ms)
    (row,) = [c for c in probe_comparisons(study, infos) if c.kind == "adaptation"]
    # AUC over 0-160: pre-trained (10*0.15 + 30*0.65 + 120*1.0) / 160 = 0.88125, random 120*0.1 / 160 = 0.075
    assert row.unit == "nats" and row.subject == "pre-trained − random" and row.verdict() == "pre-trained higher"
    assert row.est[0] == pytest.approx(0.88125 - 0.075) and row.n == 40 and row.seeds == 2
    blocks = gain_blocks(study, {**groups, ("pretrained", "none"): before}, list(groups), ms)
    words = " ".join(b.text for b in blocks if isinstance(b, Para))
    assert "the probe moves at this scale" in words
    assert (
        "pretrained: question-gain AUC, sft model minus the model before post-training = +0.88 [+0.88, +0.88] "
        "nats (n=40 items, 2 seeds, paired)"
    ) in words
    (table,) = [b for b in blocks if isinstance(b, Table)]
    assert table.header[-1] == "steps to 0.5 nats"
    assert table.rows[0][:2] == ["pretrained", "sft"] and table.rows[0][4].startswith("+1.00 [")
    assert table.rows[0][-1] == "40 [40, 40]" and table.rows[1][-1] == "> 160 [> 160, > 160]"

    flat = [RunResults(init, "sft", s, probes=_gain_rows(dict.fromkeys(ms, 0.0))) for init in curves for s in (0, 1)]
    flat_groups = {(i.init, i.label): [j for j in flat if j.init == i.init] for i in flat}
    assert not gain_moves(study, flat_groups, ms)
    assert [c for c in probe_comparisons(study, flat) if c.kind == "adaptation"] == []
    words = " ".join(b.text for b in gain_blocks(study, flat_groups, [], ms) if isinstance(b, Para))
    assert "the probe cannot measure at this scale, and no comparison of it is made" in words
