"""`postfit eval`'s results in lm-evaluation-harness's results JSON layout as well (DIR/results_lm-eval.json), so
tables and viewers made for lm-eval's `results_<date>.json` files read them.

The layout is that of the dict lm-eval's `simple_evaluate` returns and `EvaluationTracker.save_results_aggregated`
writes (lm_eval/evaluator.py, lm_eval/evaluator_utils.py `_to_eval_results`, lm_eval/loggers/evaluation_tracker.py):

    results           {task: {"alias": task, "<metric>,none": value, "<metric>_stderr,none": stderr}}
    versions          {task: the task's version}
    n-shot            {task: 0}
    higher_is_better  {task: {metric: true}}
    n-samples         {task: {"original": items of the benchmark (null under --limit), "effective": items scored}}
    configs           {task: the task as postfit ran it: dataset, protocol, prompt, generation settings, metrics}
    config            {"model", "model_args", "batch_size", "limit", "bootstrap_iters", "gen_kwargs", "random_seed",
                       and postfit's "protocol", "n", "temperature", "top_p", "max_new_tokens", "backend"}
    git_hash          the postfit checkout's commit, null when postfit is not run from a git checkout
    date              when the evaluation started (unix time)

A task is a benchmark; "none" is lm-eval's name for "no filter". stderr is lm-eval's for a mean over items
(`mean_stderr`, lm_eval/api/metrics.py): the sample standard deviation of the per-item values over sqrt(items).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

FILE = "results_lm-eval.json"


def git_hash() -> str | None:
    """The commit of the postfit checkout this code runs from (`git rev-parse --short HEAD`, as lm-eval's
    `get_git_commit_hash` gives its own), or None when postfit is installed from a wheel or git is missing."""
    root = Path(__file__).resolve().parents[3]  # src/postfit/evaluation/ -> the checkout
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def stderr(values: list[float]) -> float | str:
    """lm-eval's `mean_stderr`; "N/A" for a single item, as lm-eval writes it."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else "N/A"


def _per_item(samples: list[dict], split: str, metric: str) -> list[float]:
    from postfit.analysis.stats import per_item_pass

    k = None if metric == "pass@1" else 1 if metric.startswith("avg@") else int(metric.removeprefix("pass@"))
    per_item = per_item_pass(samples, split, k)
    return [per_item[i] for i in sorted(per_item)]


def task_config(name: str, protocol: str, meta: dict) -> dict:
    """The benchmark as it was run, in the spirit of lm-eval's per-task `configs` (its dataset, prompt, generation
    settings and metrics)."""
    from postfit.data.benchmarks import BENCHMARKS
    from postfit.data.lighteval import LIGHTEVAL, TASKS

    spec = BENCHMARKS.get(name)
    out = {"task": name, "dataset_path": getattr(spec, "path", None), "dataset_name": getattr(spec, "config", None),
           "test_split": getattr(spec, "split", None), "num_fewshot": 0, "protocol": protocol,
           "generation_kwargs": {k: meta["options"][k] for k in ("temperature", "top_p", "max_new_tokens")},
           "n": meta["samples"].get(name)}  # fmt: skip
    if protocol == LIGHTEVAL:
        out["lighteval_task"] = f"lighteval|{TASKS[name].name}|0|0"
    return out


def version(name: str, protocol: str) -> int | str:
    """lighteval's version of the task under its protocol; under postfit's, postfit's package version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    from postfit.data.lighteval import LIGHTEVAL, TASKS

    if protocol == LIGHTEVAL:
        return TASKS[name].version
    try:
        return f"postfit {package_version('postfit')}"
    except PackageNotFoundError:
        return "postfit"


def lm_eval_results(rows: list[dict], samples: list[dict], meta: dict) -> dict:
    """The lm-eval results dict of `postfit eval`'s results rows, the samples they come from and eval.json's record
    (`meta`: model, benchmarks with item counts, limit, seed, protocol, samples per benchmark, options, started)."""
    results, higher, configs, versions, counts = {}, {}, {}, {}, {}
    for name, items in meta["benchmarks"].items():
        mine = [r for r in rows if r["split"] == name]
        protocol = mine[0]["protocol"]
        results[name] = {"alias": name}
        for r in mine:
            results[name][f"{r['metric']},none"] = r["value"]
            results[name][f"{r['metric']}_stderr,none"] = stderr(_per_item(samples, name, r["metric"]))
        higher[name] = {r["metric"]: True for r in mine}
        configs[name] = task_config(name, protocol, meta)
        versions[name] = version(name, protocol)
        counts[name] = {"original": items if meta["limit"] is None else None, "effective": mine[0]["n"]}
    options = meta["options"]
    gen = {k: options[k] for k in ("temperature", "top_p", "max_new_tokens")}
    config = {"model": meta["model"], "model_args": f"pretrained={meta['model']}", "batch_size": options["batch_size"],
              "limit": meta["limit"], "bootstrap_iters": 1000, "gen_kwargs": gen, "random_seed": meta["seed"],
              "protocol": meta["protocol"], "n": meta["samples"], **gen, "backend": options["backend"]}  # fmt: skip
    return {"results": results, "group_subtasks": {name: [] for name in results}, "configs": configs,
            "versions": versions, "n-shot": {name: 0 for name in results}, "higher_is_better": higher,
            "n-samples": counts, "config": config, "git_hash": git_hash(), "date": meta["started"]}  # fmt: skip
