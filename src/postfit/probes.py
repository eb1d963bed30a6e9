"""Learning-to-learn probes: does a model learn a never-seen task from examples in its prompt, or from a few steps?

Both run on every run's final model, so the `none` runs give the models before post-training and the others the
models after it. Their items come from reasoning-gym families the study never post-trains on (checked by the study
schema), drawn from `probes.seed`; every completion is stored like an evaluation sample (runs/*/probes.jsonl),
with `probe`, `task` and `k` (shots) or `m` (adaptation steps) added, so the report recomputes every curve. An
adaptation row also holds `loglik` and `loglik_other`, its answer's log-likelihood after its own question and after
the next test item's: their difference, the question gain, moves where accuracy cannot.

In-context prompts: the query is the last user turn; before it come k solved examples as earlier chat turns
(user: the example's prompt, assistant: `Answer: <its answer>`). The shots come from a pool generated apart from
the queries (no shared question), and a shot whose answer the task's own verifier would accept for the query is
never used: otherwise a model could score by copying an earlier answer without learning anything. The shots of the
k-shot prompt are the first k of one fixed order per query, so the k-curve compares nested prompts.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from postfit.config.scaling import AdaptProbe, ICLProbe, ProbesConfig
from postfit.distributed import barrier, is_main
from postfit.errors import UserError
from postfit.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from postfit.item import Item
from postfit.layout import RunDir
from postfit.tasks import ANSWER_PREFIX, generate_items, normalise_question, split_seed
from postfit.ui import stage
from postfit.verify import is_correct, score

log = logging.getLogger(__name__)
ADAPT_MAX_LENGTH = 256  # tokens of an adaptation training example


def _items(name: str, config: dict, n: int, seed: int, seen: set[str], split: str, key: str) -> list[Item]:
    items = generate_items(name, config, n, seed, seen, split, key)
    return [replace(it, target=f"{ANSWER_PREFIX} {it.answer}") for it in items]


def make_probe_data(probes: ProbesConfig) -> dict:
    """{"icl": {task: {"queries": [...], "pool": [...]}}, "adapt": {"train": [...], "test": [...]}}; no question
    appears twice anywhere in it."""
    seen: set[str] = set()
    out: dict = {"icl": {}, "adapt": None}
    if probes.icl is not None:
        for i, t in enumerate(probes.icl.tasks):
            key = f"probes.icl.tasks[{i}]"
            query_seed = split_seed(probes.seed, "icl", t.name)
            queries = _items(t.name, t.config, probes.icl.items, query_seed, seen, "icl", key)
            pool_seed = split_seed(probes.seed, "icl_pool", t.name)
            pool = _items(t.name, t.config, probes.icl.pool, pool_seed, seen, "icl_pool", key)
            out["icl"][t.name] = {"queries": queries, "pool": pool}
    if probes.adapt is not None:
        a, key = probes.adapt, "probes.adapt.task"
        test_seed = split_seed(probes.seed, "adapt_test")
        test = _items(a.task.name, a.task.config, a.test_size, test_seed, seen, "adapt", key)
        train_seed = split_seed(probes.seed, "adapt_train")
        train = _items(a.task.name, a.task.config, a.train_size, train_seed, seen, "adapt_train", key)
        out["adapt"] = {"train": train, "test": test}
    return out


def _each_item(data: dict, f: Callable) -> dict:
    """`make_probe_data`'s shape with `f` applied to every item (to JSON and back)."""

    def parts(d: dict) -> dict:
        return {part: [f(it) for it in items] for part, items in d.items()}

    adapt = None if data["adapt"] is None else parts(data["adapt"])
    return {"icl": {task: parts(d) for task, d in data["icl"].items()}, "adapt": adapt}


def ensure_probe_data(probes: ProbesConfig, out_dir: Path, made: dict | None = None) -> dict:
    """The probe items of the study, generated once into DIR/data/probes.json (`made`: already generated)."""
    path = out_dir / "data" / "probes.json"
    if path.exists():
        return _each_item(read_json(path), Item.from_json)
    data = made if made is not None else make_probe_data(probes)
    atomic_write_json(path, _each_item(data, Item.to_json))
    return data


def _leaks(query: Item, shot: Item) -> bool:
    """True when the shot would give the query away: same question, or an answer the verifier accepts for it."""
    if normalise_question(shot.question) == normalise_question(query.question):
        return True
    return score(query, shot.target)[1] > 0


def icl_prompts(queries: list[Item], pool: list[Item], ks: list[int], seed: int) -> list[dict]:
    """One row per (query, k): item, task, k, shots (pool ids, in prompt order) and the chat messages."""
    rows = []
    k_max = max(ks)
    for q in queries:
        candidates = [s for s in pool if not _leaks(q, s)]
        if len(candidates) < k_max:
            raise UserError(
                f"probes.icl: only {len(candidates)} shots of {q.meta['task']!r} do not give away the answer of "
                f"{q.id}, {k_max} needed; raise probes.icl.pool or widen the task's config"
            )
        order = random.Random(f"{seed}/{q.id}").sample(candidates, k_max)
        for k in ks:
            messages = []
            for shot in order[:k]:
                messages.append({"role": "user", "content": shot.prompt})
                messages.append({"role": "assistant", "content": shot.target})
            messages.append({"role": "user", "content": q.prompt})
            rows.append({"item": q.id, "task": q.meta["task"], "k": k, "shots": [s.id for s in order[:k]],
                         "messages": messages})  # fmt: skip
    return rows


def _sample_row(item: Item, completion: str, **extra) -> dict:
    answer, value = score(item, completion)
    return {**extra, "item": item.id, "sample": -1, "prompt": item.prompt, "completion": completion,
            "answer": answer, "reference": item.answer, "correct": is_correct(value), "score": value}  # fmt: skip


def run_icl(model, tokenizer, data: dict, spec: ICLProbe, eval_opts, seed: int) -> list[dict]:
    from postfit.evaluation.generate import generate

    opts = eval_opts.model_copy(update={"max_new_tokens": spec.max_new_tokens})
    rows = []
    for task, d in data.items():
        prompts = icl_prompts(d["queries"], d["pool"], spec.k, seed)
        completions = generate(model, tokenizer, [p["messages"] for p in prompts], opts, label=f"icl {task}")
        by_id = {q.id: q for q in d["queries"]}
        for p, (completion,) in zip(prompts, completions, strict=True):
            rows.append(_sample_row(by_id[p["item"]], completion, probe="icl", task=task, split=f"icl:{task}",
                                    k=p["k"], shots=p["shots"]))  # fmt: skip
    return rows


def run_adapt(model, tokenizer, data: dict, spec: AdaptProbe, eval_opts, work_dir: Path, seed: int) -> list[dict]:
    """Fine-tune a copy of `model` on the new task with a constant learning rate, evaluating after each m steps."""
    from collections import Counter

    import torch
    from transformers import TrainerCallback

    from postfit.context_probe import answer_logliks
    from postfit.evaluation.generate import generate
    from postfit.train.sft import probe_trainer, sft_dataset

    opts = eval_opts.model_copy(update={"max_new_tokens": spec.max_new_tokens})
    test, rows = data["test"], []
    majority = Counter(it.answer for it in data["train"]).most_common(1)[0][0]  # a constant answer's baseline

    # The answer's log-likelihood after its own question and after the next test item's: their difference (the
    # question gain, report/probes.py) is what the model took from the question, not from the answers' distribution.
    own = [{"shots": [], "question": it.prompt, "answer": it.answer} for it in test]
    other = [{**row, "question": own[(i + 1) % len(own)]["question"]} for i, row in enumerate(own)]

    def evaluate(m: int, net) -> None:
        rng_state = torch.random.get_rng_state()  # evaluation must not change the training's random stream
        side = tokenizer.padding_side
        completions = generate(net, tokenizer, [it.prompt for it in test], opts, label=f"adapt m={m}")
        tokenizer.padding_side = side
        logliks, others = answer_logliks(net, tokenizer, own), answer_logliks(net, tokenizer, other)
        torch.random.set_rng_state(rng_state)
        task = test[0].meta["task"]
        rows.extend(_sample_row(it, c, probe="adapt", task=task, split=f"adapt:{task}", m=m, majority=majority,
                                loglik=ll, loglik_other=lo)
                    for it, (c,), ll, lo in zip(test, completions, logliks, others, strict=True))  # fmt: skip
        net.train()

    # A fresh module with the same weights, not copy.deepcopy: a model a Trainer has trained carries an instance
    # `forward` bound to itself (accelerate's wrapper), which a deep copy would keep calling, so the copy's
    # own weights would neither train nor be evaluated.
    work = type(model)(copy.deepcopy(model.config))
    work.load_state_dict(model.state_dict())
    work.generation_config = copy.deepcopy(model.generation_config)
    if 0 in spec.steps:
        evaluate(0, work)
    m_max = max(spec.steps)
    if m_max == 0:
        return rows

    class _EvalAt(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in spec.steps:
                evaluate(state.global_step, model)

    trainer = probe_trainer(work, tokenizer, sft_dataset(data["train"]), work_dir, m_max, spec.batch_size,
                            spec.learning_rate, seed, max_length=ADAPT_MAX_LENGTH)  # fmt: skip
    trainer.add_callback(_EvalAt())
    trainer.train()
    return rows


def run_probes(probes: ProbesConfig, data: dict, model, tokenizer, eval_opts, run_dir: Path, seed: int) -> list[dict]:
    """Every probe on one run's final model, stored in run_dir/probes.jsonl (reused if it exists)."""
    import shutil

    out = RunDir(run_dir)
    path = out.probes
    if path.exists():
        return read_jsonl(path)
    rows: list[dict] = []
    with stage("probes", run_dir.name):
        if probes.icl is not None:
            rows += run_icl(model, tokenizer, data["icl"], probes.icl, eval_opts, probes.seed)
        if (c := probes.context) is not None:
            from postfit.context_probe import make_rows, run_context

            rows += run_context(model, tokenizer, make_rows(c.families, c.k, c.items, c.seed), eval_opts,
                                c.max_new_tokens)  # fmt: skip
        if probes.adapt is not None:
            work_dir = out.adapt_work
            rows += run_adapt(model, tokenizer, data["adapt"], probes.adapt, eval_opts, work_dir, seed)
            if is_main():
                shutil.rmtree(work_dir, ignore_errors=True)
    if is_main():
        write_jsonl(path, rows)
    barrier()
    return rows
