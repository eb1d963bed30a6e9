"""`postfit eval`: any checkpoint on named benchmarks, outside a study, in the study's file formats.

    DIR/samples.jsonl   one row per completion, as a study run writes them: split (the benchmark's name), item,
                        sample (-1 greedy, 0..n-1 sampled), prompt, completion, answer, reference, correct, score,
                        protocol
    DIR/results.jsonl   one row per benchmark x metric: run (the model as given), init, recipe (null: not a
                        study run), seed, split, metric, value, n, ci_low, ci_high, protocol
    DIR/eval.json       what was evaluated: model, benchmarks, item counts, protocol, samples per benchmark,
                        options, seconds, and for code benchmarks the sandbox's layers (`weak: true` when run with
                        --unsafe-weak-sandbox)
    DIR/results_lm-eval.json  the results in lm-evaluation-harness's layout (evaluation/lm_eval_json.py)

Metrics: `pass@1` is the greedy completion's correctness; with --samples n, `avg@n` is the mean correctness of
the n sampled completions and `pass@k` the unbiased estimator of Chen et al. (2021), both averaged over items,
each with a bootstrap interval over items. Under `--protocol lighteval` (postfit.data.lighteval) there is no greedy
completion: `pass@1` is the mean correctness of the n samples, lighteval's pass@1. Every row names its protocol;
every number is recomputed from samples.jsonl by `stats`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from postfit.config import EvalOptions
from postfit.data.lighteval import LIGHTEVAL, POSTFIT, check_lighteval
from postfit.errors import UserError
from postfit.evaluation.lm_eval_json import FILE as LM_EVAL_FILE
from postfit.evaluation.lm_eval_json import lm_eval_results
from postfit.io import atomic_write_json, write_jsonl
from postfit.item import Item
from postfit.layout import RunDir

log = logging.getLogger(__name__)
# The options `postfit eval` uses (eval.json records them).
_GENERATION = {"batch_size", "max_new_tokens", "samples", "k", "temperature", "top_p", "backend"}


# `postfit eval`'s defaults under postfit's protocol; under lighteval's, EvalOptions fills open-r1's.
CLI_DEFAULTS = {"samples": 0, "max_new_tokens": 1024, "temperature": 0.6, "top_p": 0.95, "batch_size": 16}


def eval_options(*, protocol: str = POSTFIT, k: list[int] | None = None, **values) -> EvalOptions:
    """EvalOptions for `postfit eval` from the options given (None: not given, the protocol's default); pass@k for
    k = --samples unless `k` is given."""
    given = {key: v for key, v in values.items() if v is not None}
    if protocol == POSTFIT:
        given = {**CLI_DEFAULTS, **given}
    samples = given.get("samples")
    if k is not None or samples is not None:
        given["k"] = k if k is not None else ([samples] if samples > 1 else [])
    try:
        return EvalOptions(protocol=protocol, **given)
    except ValueError as e:
        raise UserError(f"postfit eval options: {e}") from None


def load_benchmarks(names: list[str], limit: int | None, protocol: str = POSTFIT) -> dict[str, list[Item]]:
    """Every benchmark's items, before any model is loaded: an unknown or unreachable one stops the run first."""
    from postfit.data.benchmarks import load_benchmark

    if not names:
        raise UserError("--bench: give at least one benchmark name")
    if len(set(names)) != len(names):
        raise UserError(f"--bench: a benchmark is named twice in {','.join(names)}")
    if protocol == LIGHTEVAL:  # all named before any dataset is read
        for name in names:
            try:
                check_lighteval(name)
            except ValueError as e:
                raise UserError(f"--bench: {e}") from None
    data = {name: load_benchmark(name, limit=limit, protocol=protocol) for name in names}
    empty = [name for name, items in data.items() if not items]
    if empty:
        raise UserError(f"--bench: no items in {', '.join(empty)} (check --limit)")
    return data


def load_checkpoint(name_or_path: str):
    """(model, tokenizer) through the ordinary transformers path: a local directory or a hub id, which offline
    (HF_HUB_OFFLINE=1 or no network) must already be in the Hugging Face cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postfit.models import hub_error

    cuda = torch.cuda.is_available()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        # On a GPU the checkpoint's own dtype (bf16 for most); on the CPU float32, which its kernels are made for.
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype="auto" if cuda else torch.float32)
    except OSError as e:
        raise hub_error(name_or_path, e, key="MODEL") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        log.info("%s has no chat template: prompts are given as raw text to continue", name_or_path)
    return model.to("cuda" if cuda else "cpu"), tokenizer


def _row(run: dict, split: str, metric: str, values: np.ndarray, n_boot: int, ci: float) -> dict:
    from postfit.analysis.stats import bootstrap_ci

    value, lo, hi = bootstrap_ci([values], n_boot, ci, rng=np.random.default_rng(0))
    return {**run, "split": split, "metric": metric, "value": value, "n": int(values.size), "ci_low": lo,
            "ci_high": hi}  # fmt: skip


def results(run: dict, samples: list[dict], ks: list[int], n_boot: int = 1000, ci: float = 0.95) -> list[dict]:
    """results.jsonl rows: the study's pass@1 (greedy) and pass@k rows (stats.run_results), plus avg@n.

    avg@n is the unbiased pass@1 estimate from the n sampled completions, i.e. their mean correctness.
    """
    from postfit.analysis.stats import per_item_pass, protocol, run_results, samples_per_item, splits_of

    rows = run_results(run, samples, ks, n_boot, ci)
    base = {key: run.get(key) for key in ("run", "init", "recipe", "seed")}
    for split in splits_of(samples):
        n = samples_per_item(samples, split)
        if n:
            per_item = per_item_pass(samples, split, 1)
            values = np.array([per_item[i] for i in sorted(per_item)])
            rows.append({**_row(base, split, f"avg@{n}", values, n_boot, ci), "protocol": protocol(samples, split)})
    order = {split: i for i, split in enumerate(dict.fromkeys(r["split"] for r in samples))}
    return sorted(rows, key=lambda r: order[r["split"]])  # benchmarks in the order asked; metrics as written


def evaluate_checkpoint(model_name: str, benches: list[str], out_dir: Path, opts: EvalOptions, *,
                        limit: int | None = None, seed: int = 0) -> list[dict]:  # fmt: skip
    """Generate and score on every benchmark; write samples.jsonl, results.jsonl and eval.json to `out_dir`."""
    from postfit.analysis.distance import annotate
    from postfit.evaluation.generate import evaluate_splits
    from postfit.models import PLAIN_TEMPLATE

    data = load_benchmarks(benches, limit, opts.protocol)
    sandbox = None
    if any(it.domain == "code" for items in data.values() for it in items):
        from postfit.sandbox import check

        sandbox = check("postfit eval --bench " + ",".join(benches))  # before the model is loaded
    if opts.backend == "vllm":  # vLLM loads the weights itself: only the tokenizer here
        from postfit.evaluation.vllm import require_vllm
        from postfit.models import load_tokenizer

        require_vllm("--backend")
        model, tokenizer = None, load_tokenizer(model_name)
        if tokenizer.chat_template == PLAIN_TEMPLATE:
            tokenizer.chat_template = None  # a base model continues the raw prompt, as with the hf backend
    else:
        model, tokenizer = load_checkpoint(model_name)
    started, start = time.time(), time.perf_counter()
    samples = annotate(evaluate_splits(model, tokenizer, data, opts, seed, model_name), {}, "")  # no known SFT data
    seconds = time.perf_counter() - start
    run = {"run": model_name, "init": None, "recipe": None, "seed": seed}
    rows = results(run, samples, opts.k)
    out_dir = Path(out_dir)
    write_jsonl(RunDir(out_dir).samples, samples)  # the files of a study's run directory, in its formats
    write_jsonl(RunDir(out_dir).results, rows)
    meta = {"model": model_name, "benchmarks": {b: len(v) for b, v in data.items()}, "limit": limit, "seed": seed,
            "protocol": opts.protocol, "samples": {b: opts.samples_for(b) for b in data},
            "options": opts.model_dump(include=_GENERATION), "seconds": round(seconds, 2), "started": round(started),
            "sandbox": sandbox}  # fmt: skip
    atomic_write_json(out_dir / "eval.json", meta)
    atomic_write_json(out_dir / LM_EVAL_FILE, lm_eval_results(rows, samples, meta))
    return rows
