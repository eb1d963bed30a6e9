"""The context probe: in-context learning on families whose answer only the prompt can give.

Each query comes with its own k solved examples as earlier chat turns (user: the example's question, assistant:
`Answer: <its answer>`), drawn afresh for it, so no prior knowledge helps and the answer is determined by the shots:

- `recall`: k keys (two fresh letters) with distinct one-digit values; the query asks one of the shown keys, at a
  random position among them. A model that copies some shot's answer scores 1/k; only retrieving the right one
  scores every time. With k = 0 the key was never shown: the value is a guess (one in ten).
- `operator`: a # b = a + b + c with an offset c (1-9) fresh for each query, shown by k examples on other
  operands; the query asks new operands. With k = 0 the offset is a guess. It needs addition, which a nano model
  does not learn in a short control (measured: +0.09 [-0.14, +0.34] nats after 300 steps on the default study's
  base).
- `affine`: a $ b = 10a + c, a digit c (0-9) fresh for each query, shown the same way: the answer is the first
  operand followed by c, an operator a model can apply by copying, once the shots have shown it. With k = 0 both
  the rule and c are unknown.

Two measures per (query, k): greedy accuracy (the `Answer:` line equals the context-determined answer; nothing else
is accepted, no other shot's answer) and the log-likelihood of that answer after `Answer: ` (nats, summed over the
tokens that cover it), which moves even for a model that never writes the answer format. The gain is the mean over
k > 0 minus k = 0.

A probe that cannot move says nothing, so the study trains a positive control (`control`): a base of the study
(`control.init`, the pre-trained one by default) fine-tuned briefly on these families' own prompts (other draws);
the probe must show a gain on it, or the report calls the family unable to measure at this scale.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from pathlib import Path

from postfit.io import read_jsonl, write_jsonl
from postfit.tasks import ANSWER_PREFIX
from postfit.ui import stage
from postfit.verify.extract import extract_answer

CONTROL_MAX_LENGTH = 512  # tokens of a control training conversation (k shots and the query)
Shots = list[tuple[str, str]]  # (question, answer) of each solved example, in prompt order
Draw = Callable[[random.Random, int], tuple[Shots, str, str]]  # (rng, k) -> (shots, query question, answer)
_KEYS = [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase]
_OFFSETS = range(1, 10)


def recall(rng: random.Random, k: int) -> tuple[Shots, str, str]:
    keys = rng.sample(_KEYS, k + 1)  # the last one is the query's key when k = 0 (never shown)
    values = rng.sample(range(10), max(k, 1))
    target = rng.randrange(k) if k else None
    shots = [(f"What is {key}?", str(v)) for key, v in zip(keys[:k], values, strict=False)]
    if target is None:
        return shots, f"What is {keys[k]}?", str(values[0])
    return shots, f"What is {keys[target]}?", str(values[target])


def operator(rng: random.Random, k: int) -> tuple[Shots, str, str]:
    c = rng.choice(_OFFSETS)
    pairs = rng.sample([(a, b) for a in range(1, 10) for b in range(1, 10)], k + 1)
    shots = [(f"{a} # {b} = ?", str(a + b + c)) for a, b in pairs[:k]]
    a, b = pairs[k]
    return shots, f"{a} # {b} = ?", str(a + b + c)


def affine(rng: random.Random, k: int) -> tuple[Shots, str, str]:
    c = rng.randrange(10)
    pairs = rng.sample([(a, b) for a in range(1, 10) for b in range(1, 10)], k + 1)
    shots = [(f"{a} $ {b} = ?", str(10 * a + c)) for a, b in pairs[:k]]
    a, b = pairs[k]
    return shots, f"{a} $ {b} = ?", str(10 * a + c)


FAMILIES: dict[str, Draw] = {"recall": recall, "operator": operator, "affine": affine}
# What each family asks, in the report's words.
DESCRIPTIONS = {"recall": "the value of one of k fresh keys", "operator": "a # b = a + b + c with a fresh c",
                "affine": "a $ b = 10a + c with a fresh digit c"}  # fmt: skip


def messages(shots: Shots, question: str) -> list[dict]:
    out = []
    for q, a in shots:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": f"{ANSWER_PREFIX} {a}"}]
    return [*out, {"role": "user", "content": question}]


def make_rows(families: list[str], ks: list[int], items: int, seed: int) -> list[dict]:
    """One row per (family, query, k): item id, family, k, shots, question, answer; each (query, k) drawn by its own
    seeded generator, so a row does not depend on which others exist."""
    rows = []
    for family in families:
        for i in range(items):
            for k in ks:
                shots, question, answer = FAMILIES[family](random.Random(f"{seed}/{family}/{i}/{k}"), k)
                rows.append({"item": f"{family}/{i}", "task": family, "k": k, "shots": shots, "question": question,
                             "answer": answer})  # fmt: skip
    return rows


def is_right(completion: str, answer: str) -> bool:
    """The context probe's verifier: the `Answer:` line is exactly the context-determined answer."""
    got = extract_answer(completion)
    return got is not None and got.strip() == answer


def answer_logliks(model, tokenizer, rows: list[dict], batch_size: int = 64) -> list[float]:
    """log p(answer | shots, question, `Answer: `) of each row, in nats, summed over the tokens that cover the
    answer's characters (one forward pass per batch, right-padded)."""
    import torch

    from postfit.evaluation.prompts import prompt_texts

    texts, raw = prompt_texts(tokenizer, [messages(r["shots"], r["question"]) for r in rows])
    prefixes = [t + f"{ANSWER_PREFIX} " for t in texts]
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    model.eval()
    out: list[float] = []
    try:
        for start in range(0, len(rows), batch_size):
            chunk = range(start, min(start + batch_size, len(rows)))
            full = [prefixes[i] + rows[i]["answer"] for i in chunk]
            enc = tokenizer(full, return_tensors="pt", padding=True, add_special_tokens=raw,
                            return_offsets_mapping=True)  # fmt: skip
            offsets = enc.pop("offset_mapping")
            with torch.no_grad():
                logits = model(**enc.to(model.device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, enc["input_ids"][:, 1:, None])[..., 0].cpu()
            for j, i in enumerate(chunk):
                begin = len(prefixes[i])
                covers = (offsets[j, 1:, 1] > begin) & enc["attention_mask"][j, 1:].bool().cpu()
                out.append(round(float(logp[j][covers].sum()), 5))
    finally:
        tokenizer.padding_side = side
    return out


def run_context(model, tokenizer, rows: list[dict], eval_opts, max_new_tokens: int) -> list[dict]:
    """The probe rows of one model: greedy completion, its correctness and the answer's log-likelihood."""
    from postfit.evaluation.generate import generate

    opts = eval_opts.model_copy(update={"max_new_tokens": max_new_tokens})
    completions = generate(model, tokenizer, [messages(r["shots"], r["question"]) for r in rows], opts,
                           label="context probe")  # fmt: skip
    logliks = answer_logliks(model, tokenizer, rows)
    return [
        {"probe": "context", "task": r["task"], "split": f"context:{r['task']}", "item": r["item"], "k": r["k"],
         "sample": -1, "prompt": r["question"], "shots": r["shots"], "completion": c, "reference": r["answer"],
         "answer": extract_answer(c), "correct": is_right(c, r["answer"]), "score": float(is_right(c, r["answer"])),
         "loglik": ll}
        for r, (c,), ll in zip(rows, completions, logliks, strict=True)
    ]  # fmt: skip


def control_rows(families: list[str], ks: list[int], n: int, seed: int) -> list[dict]:
    """The positive control's training conversations: n draws of the families with k > 0 shots, from a seed the
    probe's own rows never use (the rows are drawn per (query, k) seed, these per training example)."""
    rng = random.Random(f"{seed}/control")
    shown = [k for k in ks if k > 0] or [1]
    out = []
    for i in range(n):
        family = families[i % len(families)]
        shots, question, answer = FAMILIES[family](rng, rng.choice(shown))
        out.append({"prompt": messages(shots, question),
                    "completion": [{"role": "assistant", "content": f"{ANSWER_PREFIX} {answer}"}]})  # fmt: skip
    return out


def train_control(model, tokenizer, spec, work_dir: Path, seed: int) -> None:
    """Fine-tune `model` in place on the families' own prompts (`spec.control`: steps, batch size, constant
    learning rate), the completion-only loss of TRL's SFTTrainer."""
    from datasets import Dataset

    from postfit.train.sft import probe_trainer

    c = spec.control
    data = Dataset.from_list(control_rows(spec.families, spec.k, c.steps * c.batch_size, seed))
    trainer = probe_trainer(model, tokenizer, data, work_dir, c.steps, c.batch_size, c.learning_rate, seed,
                            CONTROL_MAX_LENGTH)  # fmt: skip
    trainer.train()


def ensure_control(spec, eval_opts, variant, path: Path, work_dir: Path, seed: int) -> list[dict]:
    """The positive control's probe rows (`path`, written once): `variant` (a base of the study, `control.init`)
    trained on the families, then probed like every run's model. Nothing with `spec.control` off."""
    import shutil

    from postfit.distributed import is_main

    if spec.control is None:
        return []
    if path.exists():
        return read_jsonl(path)
    with stage("probe control", f"{spec.control.steps} steps on {', '.join(spec.families)}"):
        train_control(variant.model, variant.tokenizer, spec, work_dir, seed)
        rows = run_context(variant.model, variant.tokenizer, make_rows(spec.families, spec.k, spec.items, seed),
                           eval_opts, spec.max_new_tokens)  # fmt: skip
    if is_main():
        write_jsonl(path, rows)
        shutil.rmtree(work_dir, ignore_errors=True)
    return rows
