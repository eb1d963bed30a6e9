"""The lighteval protocol (`eval.protocol: lighteval`, `postfit eval --protocol lighteval`): lighteval's prompts, its
math metric through math-verify, pass@1 averaged over n samples, the protocol named in every row, and results in
lm-eval's JSON layout.

tests/fixtures/lighteval_math_pairs.jsonl holds 48 (completion, gold) pairs: boxed answers, plain final lines, bare
numbers, LaTeX fractions, intervals, sets, units, wrong and missing answers; a gold is what lighteval's Doc holds
(AIME's `answer`, or a MATH-500 `solution` with its \\boxed{} answer). Column `lighteval` is the verdict of
lighteval's own code (v0.13.0 from PyPI with its pinned latex2sympy2_extended 1.0.6: `extract_target_from_pred` and
`compare_gold_target` of src/lighteval/metrics/utils/, called as `MultilingualExtractiveMatchMetric.compute` calls
them for `pass_at_k_math`), recorded once on 2026-12-04; lighteval is not a dependency, so it is not run here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import postfit
from postfit.io import read_jsonl
from test_data import FIXTURES, hub_snapshot  # noqa: F401  (the offline hub fixture)

PAIRS = [json.loads(line) for line in (Path(__file__).parent / "fixtures" / "lighteval_math_pairs.jsonl").open()]


def math_verify_as_lighteval_calls_it(gold: str, completion: str) -> float:
    """lighteval v0.13.0's math metric on one completion, with math-verify in place of lighteval's own copy of it.

    Transcribed from src/lighteval/metrics/metrics.py `Metrics.pass_at_k_math` = PassAtK(strip_strings=True,
    sample_scoring_function=MultilingualExtractiveMatchMetric(language=Language.ENGLISH, gold_extraction_target=
    [ExprExtractionConfig(), LatexExtractionConfig()], pred_extraction_target=[the same], precision=6)), whose
    defaults are fallback_mode="first_match", extraction_mode="any_match", timeout_seconds=5 and
    aggregation_function=max (src/lighteval/metrics/dynamic_metrics.py), and LatexExtractionConfig's defaults in
    src/lighteval/metrics/utils/extractive_match_utils.py: boxed_match_priority=55, NormalizationConfig(
    basic_latex=True, units=True, malformed_operators=True, nits=True, boxed="all", equations=True).
    """
    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # SamplingMetric.preprocess: "" stays "", else strip
    gold, completion = gold.strip(), completion.strip() if completion else ""
    latex = LatexExtractionConfig(
        try_extract_without_anchor=True,
        boxed_match_priority=55,
        normalization_config=NormalizationConfig(
            basic_latex=True, units=True, malformed_operators=True, nits=True, boxed="all", equations=True
        ),
    )
    targets = [ExprExtractionConfig(), latex]
    # MultilingualExtractiveMatchMetric.compute
    extracted_predictions = [parse(completion, targets, "first_match", "any_match", 5)]
    extracted_golds = [parse(gold, targets, "first_match", "any_match", 5)]
    if any(len(g) == 0 for g in extracted_golds):
        extracted_golds = [[gold]]
    return max(
        1.0 if any(verify(g, pred, 6, timeout_seconds=5) for g in extracted_golds) else 0.0
        for pred in extracted_predictions
    )


def lighteval_item(gold: str, answer: str = "?"):
    from postfit.item import make_item

    return make_item(id="x/1", source="x", domain="math", prompt="p", split="test", answer=answer,
                     meta={"protocol": "lighteval", "gold": gold})  # fmt: skip


def test_the_corpus_covers_the_answer_forms():
    notes = " ".join(p["note"] for p in PAIRS)
    assert len(PAIRS) >= 40 and len({(p["completion"], p["gold"]) for p in PAIRS}) == len(PAIRS)
    for form in ("boxed", "plain final line", "bare number", "fraction", "interval", "wrong", "no answer"):
        assert form in notes, form
    verdicts = [p["lighteval"] for p in PAIRS]
    assert 10 <= verdicts.count(False) and 10 <= verdicts.count(True)


def test_scores_equal_math_verify_called_as_lighteval_calls_it():
    """Item by item, through the verifier every evaluation calls (postfit.verify.score on a lighteval item)."""
    from postfit.verify import score

    ours = [score(lighteval_item(p["gold"]), p["completion"])[1] for p in PAIRS]
    reference = [math_verify_as_lighteval_calls_it(p["gold"], p["completion"]) for p in PAIRS]
    assert ours == reference


def test_scores_equal_lighteval_own_code_but_for_percent():
    """math-verify 0.9.0 and lighteval's copy of it part on one pair only: lighteval reads `25\\%` as 25/100."""
    from postfit.verify.lighteval import equal

    differ = [p["note"] for p in PAIRS if equal(p["gold"], p["completion"])[1] != p["lighteval"]]
    assert differ == ["percent vs number"]


def test_the_protocols_read_answers_differently():
    """A bare final number counts under lighteval's protocol; postfit's asks for a box or an answer line."""
    from postfit.item import make_item
    from postfit.verify import score

    completion = next(p["completion"] for p in PAIRS if p["note"] == "bare number at the end")
    plain = make_item(id="x/2", source="x", domain="math", prompt="p", split="test", answer="35")
    assert score(plain, completion) == (None, 0.0)
    assert score(lighteval_item("35"), completion) == ("35", 1.0)


# ---------------------------------------------------------------- prompts and items

# lighteval@d3da6b9 (the commit open-r1 pins) src/lighteval/tasks/default_prompts.py, math_500 / aime_prompt_fn,
# as the file spells it (a non-raw string: `\\boxed{{ANSWER}}` is one backslash and, after .format, one brace pair)
LIGHTEVAL_SOURCE = (
    "Solve the following math problem efficiently and clearly.  The last line of your response should be of the "
    "following format: 'Therefore, the final answer is: $\\boxed{{ANSWER}}$. I hope it is correct' (without quotes) "
    "where ANSWER is just the final number or expression that solves the problem. Think step by step before "
    "answering.\n\n{Question}"
)


def test_the_prompt_is_lightevals_template():
    from postfit.data.lighteval import math_prompt

    assert math_prompt("What is $1+1$?") == LIGHTEVAL_SOURCE.format(Question="What is $1+1$?")
    assert "$\\boxed{ANSWER}$. I hope it is correct'" in math_prompt("q")


@pytest.mark.parametrize(("name", "gold_of"), [("math500", "solution"), ("aime24", "answer"), ("aime25", "answer")])
def test_benchmark_items_under_lighteval(hub_snapshot, name, gold_of):  # noqa: F811
    """Prompted with lighteval's template around the raw problem, scored against lighteval's gold (MATH-500: the
    whole solution), same ids and answers as under postfit's protocol, so the two pair item by item."""
    from postfit.data.benchmarks import BENCHMARKS, load_benchmark
    from postfit.verify import score

    hub_snapshot(BENCHMARKS[name].path)
    ours, theirs = load_benchmark(name), load_benchmark(name, protocol="lighteval")
    rows = [json.loads(line) for line in next((FIXTURES / BENCHMARKS[name].path.replace("/", "__")).rglob("*.jsonl"))
            .read_text().splitlines()]  # fmt: skip
    assert [it.id for it in theirs] == [it.id for it in ours] and [it.answer for it in theirs] == [
        it.answer for it in ours
    ]
    for item, row in zip(theirs, rows, strict=True):
        assert item.prompt == LIGHTEVAL_SOURCE.format(Question=row["problem"])
        assert item.meta["protocol"] == "lighteval"
        assert item.meta["gold"] == (str(row["solution"]) if gold_of == "solution" else item.answer)
        boxed = f"Therefore, the final answer is: $\\boxed{{{item.answer}}}$. I hope it is correct"
        assert score(item, boxed)[1] == 1.0 and score(item, "Therefore, the final answer is: $\\boxed{-7}$.")[1] == 0


def test_a_benchmark_without_a_lighteval_task_is_refused():
    from postfit.data.benchmarks import load_benchmark
    from postfit.errors import UserError

    with pytest.raises(UserError, match="'humaneval' has no lighteval task.*math500, aime24, aime25"):
        load_benchmark("humaneval", protocol="lighteval")


def test_eval_cli_refuses_what_the_protocol_does_not_cover(tmp_path):
    """Exit 2 before any model or dataset is loaded: a benchmark without a lighteval task, an unknown protocol."""
    for args, message in [
        (
            ("--bench", "aime24,humaneval", "--protocol", "lighteval"),
            "--bench: benchmark 'humaneval' has no lighteval",
        ),
        (("--bench", "aime24", "--protocol", "lm-eval"), "--protocol: expected one of postfit, lighteval"),
        (("--bench", "aime24", "--protocol", "lighteval", "--samples", "0"), "expected 1 or more"),
    ]:
        proc = postfit("eval", "no/model", *args, "--out", str(tmp_path / "out"), check=False)
        assert proc.returncode == 2 and message in " ".join(proc.stderr.split()), (args, proc.stderr)
        assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- options


def test_lighteval_options_default_to_open_r1s():
    from postfit.config import EvalOptions

    opts = EvalOptions(protocol="lighteval")
    assert (opts.temperature, opts.top_p, opts.max_new_tokens, opts.k) == (0.6, 0.95, 32768, [])
    assert [opts.samples_for(b) for b in ("math500", "aime24", "aime25")] == [4, 64, 64]
    assert [opts.lighteval_split(b) for b in ("math500", "id_test")] == [True, False]
    # what is set stays set; a study file written back (model_dump, as executors do) reads the same
    mine = EvalOptions(protocol="lighteval", samples=8, max_new_tokens=2048, temperature=1.0)
    assert (mine.samples_for("aime24"), mine.max_new_tokens, mine.temperature, mine.top_p) == (8, 2048, 1.0, 0.95)
    assert EvalOptions(**opts.model_dump()).samples_for("aime24") == 64
    assert EvalOptions().protocol == "postfit" and EvalOptions().samples_for("aime24") == 4


def test_bad_lighteval_study_exits_2_naming_the_key(tmp_path):
    import yaml

    from conftest import TINY_STUDY

    for eval_block, message in [
        ({"protocol": "lighteval", "benchmarks": ["gsm8k"]}, "'gsm8k' has no lighteval task"),
        ({"protocol": "lighteval", "benchmarks": ["aime24"], "samples": 0}, "expected 1 or more"),
        ({"protocol": "lm-eval"}, "eval.protocol"),
        ({"samples": None}, "needs protocol: lighteval"),
    ]:
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump({**TINY_STUDY, "eval": eval_block}))
        proc = postfit("plan", str(path), check=False)
        assert proc.returncode == 2 and message in " ".join(proc.stderr.split()), (eval_block, proc.stderr)


def test_the_protocol_is_in_the_fingerprint():
    from conftest import TINY_STUDY
    from postfit.config import parse_study

    data = {**TINY_STUDY, "eval": {"benchmarks": ["aime24"]}}
    plain = parse_study(data, "a").fingerprint()
    assert parse_study({**data, "eval": {"benchmarks": ["aime24"], "protocol": "postfit"}}, "b").fingerprint() == plain
    assert (
        parse_study({**data, "eval": {"benchmarks": ["aime24"], "protocol": "lighteval"}}, "c").fingerprint() != plain
    )


# ---------------------------------------------------------------- pass@1 over n, rows, lm-eval layout


def lighteval_rows(correct: dict[str, list[bool]], split: str = "aime24") -> list[dict]:
    return [{"split": split, "item": item, "sample": s, "correct": c, "protocol": "lighteval"}
            for item, cs in correct.items() for s, c in enumerate(cs)]  # fmt: skip


def test_pass_at_1_is_the_mean_over_n_samples():
    """Three items, four samples each, no greedy completion: pass@1 = mean over items of the per-item mean."""
    from postfit.analysis.stats import per_item_pass, run_results
    from postfit.evaluation.benchmarks import results

    samples = lighteval_rows({"a": [True, True, False, False], "b": [True] * 4, "c": [False] * 4})
    assert per_item_pass(samples, "aime24") == {"a": 0.5, "b": 1.0, "c": 0.0}
    rows = run_results({"run": "m", "seed": 0}, samples, [2], 200, 0.95)
    got = {r["metric"]: r["value"] for r in rows}
    assert got == pytest.approx({"pass@1": 0.5, "pass@2": (5 / 6 + 1 + 0) / 3})
    assert {r["protocol"] for r in rows} == {"lighteval"}
    rows = results({"run": "m", "seed": 0}, samples, [])
    assert [(r["metric"], r["protocol"]) for r in rows] == [("pass@1", "lighteval"), ("avg@4", "lighteval")]
    assert rows[0]["value"] == rows[1]["value"] == pytest.approx(0.5)


def test_two_protocols_in_one_split_are_refused():
    from postfit.analysis.stats import per_item_pass, protocol

    greedy = [{"split": "aime24", "item": "a", "sample": -1, "correct": True}]  # a row from before protocols
    assert protocol(greedy, "aime24") == "postfit" and per_item_pass(greedy, "aime24") == {"a": 1.0}
    with pytest.raises(ValueError, match="two evaluation protocols"):
        per_item_pass(greedy + lighteval_rows({"a": [False]}), "aime24")


LM_EVAL_KEYS = {"results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
                "config", "git_hash", "date"}  # fmt: skip


def check_lm_eval_layout(data: dict, benches: dict[str, int], protocol: str) -> None:
    """The keys lm-eval's results_*.json has (lm_eval/evaluator_utils.py `_to_eval_results`, evaluator.py), and a
    metric and its stderr under "<metric>,none" / "<metric>_stderr,none" per task."""
    assert LM_EVAL_KEYS <= set(data)
    assert set(data["results"]) == set(benches) == set(data["versions"]) == set(data["configs"])
    for task, n in benches.items():
        metrics = data["results"][task]
        assert metrics["alias"] == task and "pass@1,none" in metrics and "pass@1_stderr,none" in metrics
        assert {k.split(",")[0] for k in metrics if k != "alias"} == {m for m in data["higher_is_better"][task]} | {
            f"{m}_stderr" for m in data["higher_is_better"][task]
        }
        assert data["n-samples"][task]["effective"] == n and data["n-shot"][task] == 0
        assert data["configs"][task]["protocol"] == protocol
    config = data["config"]
    assert {"model", "model_args", "batch_size", "limit", "gen_kwargs", "random_seed"} <= set(config)
    assert {"n", "temperature", "top_p", "max_new_tokens", "protocol"} <= set(config) and config[
        "protocol"
    ] == protocol
    assert data["git_hash"] is None or isinstance(data["git_hash"], str)


def test_lm_eval_layout_from_rows():
    from postfit.evaluation.benchmarks import results
    from postfit.evaluation.lm_eval_json import git_hash, lm_eval_results

    samples = lighteval_rows({"a": [True, False], "b": [True, True]}) + lighteval_rows({"c": [False, True]}, "math500")
    rows = results({"run": "m", "seed": 0}, samples, [2])
    meta = {
        "model": "m",
        "benchmarks": {"aime24": 2, "math500": 1},
        "limit": None,
        "seed": 0,
        "protocol": "lighteval",
        "samples": {"aime24": 2, "math500": 2},
        "started": 0,
        "options": {"batch_size": 16, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 64, "backend": "hf"},
    }
    data = json.loads(json.dumps(lm_eval_results(rows, samples, meta)))
    check_lm_eval_layout(data, {"aime24": 2, "math500": 1}, "lighteval")
    assert data["results"]["aime24"]["pass@1,none"] == pytest.approx(0.75)
    assert data["results"]["aime24"]["pass@1_stderr,none"] == pytest.approx(0.25)  # std([0.5, 1], ddof=1) / sqrt 2
    assert data["results"]["math500"]["pass@1_stderr,none"] == "N/A"  # one item, as lm-eval writes it
    assert data["versions"]["aime24"] == 2 and data["configs"]["math500"]["lighteval_task"] == "lighteval|math_500|0|0"
    assert git_hash() == data["git_hash"]
    if (Path(__file__).parents[1] / ".git").exists():  # a checkout: its commit
        assert data["git_hash"] and len(data["git_hash"]) >= 7


def test_eval_cli_lighteval_protocol(stand_ins, hub_snapshot, tmp_path):  # noqa: F811
    """`postfit eval --protocol lighteval` offline on the MATH-500 and AIME 2024 fixtures: lighteval's prompts,
    n samples and no greedy completion, every verdict math-verify-as-lighteval, pass@1 their mean, the protocol in
    every row, and lm-eval's layout next to postfit's files."""
    from postfit.data.benchmarks import BENCHMARKS, load_benchmark

    for name in ("math500", "aime24"):
        hub_snapshot(BENCHMARKS[name].path)  # the offline hub cache in tmp_path, for the CLI and for this test
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    out = tmp_path / "out"
    proc = postfit("eval", str(stand_ins["qwen3"]), "--bench", "math500,aime24", "--protocol", "lighteval",
                   "--limit", "2", "--samples", "3", "--max-new-tokens", "8", "--out", str(out), env=env)  # fmt: skip
    assert "protocol lighteval" in " ".join(proc.stdout.split())
    samples, rows = read_jsonl(out / "samples.jsonl"), read_jsonl(out / "results.jsonl")
    assert sorted(r["sample"] for r in samples) == sorted([0, 1, 2] * 4)  # no greedy (-1) completion
    assert {r["protocol"] for r in samples} == {r["protocol"] for r in rows} == {"lighteval"}
    items = {it.id: it for b in ("math500", "aime24") for it in load_benchmark(b, limit=2, protocol="lighteval")}
    for r in samples:
        item = items[r["item"]]
        assert r["prompt"] == item.prompt and r["prompt"].startswith("Solve the following math problem")
        assert r["score"] == math_verify_as_lighteval_calls_it(item.meta["gold"], r["completion"])
    for bench in ("math500", "aime24"):
        mine = [r["correct"] for r in samples if r["split"] == bench]
        got = {r["metric"]: r["value"] for r in rows if r["split"] == bench}
        assert got["pass@1"] == pytest.approx(sum(mine) / len(mine)) == pytest.approx(got["avg@3"])
    meta = json.loads((out / "eval.json").read_text())
    assert meta["protocol"] == "lighteval" and meta["samples"] == {"math500": 3, "aime24": 3}
    assert meta["options"]["temperature"] == 0.6 and meta["options"]["top_p"] == 0.95
    check_lm_eval_layout(json.loads((out / "results_lm-eval.json").read_text()), {"math500": 2, "aime24": 2},
                         "lighteval")  # fmt: skip


def test_compare_leaves_out_a_split_evaluated_under_another_protocol(tmp_path):
    """Two studies, one of which evaluated ood_harder under lighteval's protocol: `postfit compare` shows the other
    splits and says why ood_harder is not among them."""
    from test_compare import _edit, cli, make_study

    study = make_study(tmp_path / "study")
    relabelled = _edit(study, "other", lambda run, row: {**row, "protocol": "lighteval"}
                       if row["split"] == "ood_harder" else row)  # fmt: skip
    code, output = cli("compare", str(study), str(relabelled), "--out", str(tmp_path / "cmp"))
    assert code == 0, output
    md = " ".join((tmp_path / "cmp" / "compare.md").read_text().split())
    assert "ood_harder is left out: evaluated under different protocols (synthetic: postfit, other: lighteval)" in md
    assert "| ood_harder |" not in md and "| id_test |" in md


@pytest.mark.slow
def test_a_study_with_the_lighteval_protocol(hub_snapshot, tmp_path):  # noqa: F811
    """A tiny study whose benchmark is scored under lighteval's protocol: its task splits keep postfit's (greedy
    pass@1), the benchmark gets n samples and their mean, each row says which, and the report is written."""
    import yaml

    from conftest import TINY_STUDY
    from postfit.data.benchmarks import BENCHMARKS

    hub_snapshot(BENCHMARKS["aime24"].path)
    study = {**TINY_STUDY, "grid": {"inits": ["random"], "recipes": ["none"], "seeds": [0]},
             "eval": {"protocol": "lighteval", "benchmarks": ["aime24"], "samples": 2, "max_new_tokens": 8,
                      "batch_size": 16}}  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    postfit("run", str(path), "--out", str(tmp_path / "out"), env=env)
    samples = read_jsonl(tmp_path / "out" / "runs" / "random-none-s0" / "samples.jsonl")
    rows = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert {r["protocol"] for r in samples if r["split"] == "aime24"} == {"lighteval"}
    assert {r["sample"] for r in samples if r["split"] == "aime24"} == {0, 1}
    assert {r["protocol"] for r in samples if r["split"] == "id_test"} == {"postfit"}
    assert -1 in {r["sample"] for r in samples if r["split"] == "id_test"}
    pass1 = {r["split"]: r for r in rows if r["metric"] == "pass@1"}
    assert pass1["aime24"]["protocol"] == "lighteval" and pass1["id_test"]["protocol"] == "postfit"
    aime = [r["correct"] for r in samples if r["split"] == "aime24"]
    assert pass1["aime24"]["value"] == pytest.approx(sum(aime) / len(aime))
    report = " ".join((tmp_path / "out" / "report.md").read_text().split())
    assert "aime24: lighteval's protocol (eval.protocol), where pass@1 is the mean correctness" in report
