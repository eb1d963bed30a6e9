"""postfit's decode loop against transformers' `generate`: the same greedy tokens, rows leaving as they stop."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_and_batch():
    """A random tiny Qwen3 and a left-padded batch of six prompts of different lengths."""
    from transformers import AutoModelForCausalLM, Qwen3Config

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, pad_token_id=0)  # fmt: skip
    model = AutoModelForCausalLM.from_config(config).eval()
    lengths = [7, 3, 5, 7, 1, 4]
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(1, 48, (n,))
        mask[row, -n:] = 1
    return model, ids, mask


def _hf(model, ids, mask, stops, max_new, **kwargs) -> list[list[int]]:
    """`model.generate`'s new tokens per row, cut after the first stop (its padding after that dropped)."""
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, eos_token_id=stops or None,
                             pad_token_id=0, **kwargs)[:, ids.shape[1] :].tolist()  # fmt: skip
    rows = []
    for row in out:
        hit = next((t for t, tok in enumerate(row) if tok in stops), None)
        rows.append(row if hit is None else row[: hit + 1])
    return rows


def test_greedy_decode_is_generates_greedy_search_with_rows_stopping_at_different_steps(model_and_batch):
    from postfit.config import EvalOptions
    from postfit.evaluation.generate import decode

    model, ids, mask = model_and_batch
    free = _hf(model, ids, mask, [], 12, do_sample=False)
    # Stop ids taken from the free-running rows, so that rows stop early, at different steps, and some never.
    stops = sorted({free[0][2], free[3][5]})
    want = _hf(model, ids, mask, stops, 12, do_sample=False)
    assert len({len(r) for r in want}) >= 2 and min(len(r) for r in want) < 12, "the test needs rows that stop early"
    got = decode(model, ids, mask, EvalOptions(max_new_tokens=12), stops)
    assert got == want
    assert all(r[-1] in stops for r in got if len(r) < 12)


def test_sampling_draws_n_continuations_per_row_in_row_order(model_and_batch):
    """At a temperature near zero every sampled continuation is the greedy one, so the prompt encoded once and
    repeated n times keeps each row's continuations together and in order; at 1.0 the draws are seeded."""
    from postfit.config import EvalOptions
    from postfit.evaluation.generate import decode

    model, ids, mask = model_and_batch
    greedy = decode(model, ids, mask, EvalOptions(max_new_tokens=10), [5, 9])
    cold = decode(model, ids, mask, EvalOptions(max_new_tokens=10, temperature=1e-6), [5, 9], n=3, sample=True)
    assert cold == [row for row in greedy for _ in range(3)]
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append(decode(model, ids, mask, EvalOptions(max_new_tokens=10, temperature=1.0), [5, 9], n=3,
                            sample=True))  # fmt: skip
    assert draws[0] == draws[1] and len(draws[0]) == 18
    assert draws[0] != [row for row in greedy for _ in range(3)]


def test_static_cache_decode_is_decode_with_rows_stopping_at_different_steps(model_and_batch):
    """The static-cache loop (what a CUDA device replays as a graph) gives the same greedy ids, row for row, as the
    growing-cache loop; and n seeded draws per row at a temperature near zero are the greedy rows, repeated."""
    from postfit.config import EvalOptions
    from postfit.evaluation.generate import decode
    from postfit.evaluation.static import decode_static

    model, ids, mask = model_and_batch
    free = decode(model, ids, mask, EvalOptions(max_new_tokens=12), [])
    stops = sorted({free[0][2], free[3][5]})
    want = decode(model, ids, mask, EvalOptions(max_new_tokens=12), stops)
    assert len({len(r) for r in want}) >= 2 and min(len(r) for r in want) < 12, "the test needs rows that stop early"
    assert decode_static(model, ids, mask, EvalOptions(max_new_tokens=12), stops, graph=False) == want
    cold = decode_static(model, ids, mask, EvalOptions(max_new_tokens=12, temperature=1e-6), stops, n=3, sample=True,
                         graph=False)  # fmt: skip
    assert cold == [row for row in want for _ in range(3)]


@pytest.mark.slow  # decodes with the smoke study's trained checkpoints
def test_static_cache_decode_on_a_trained_model(smoke_dir):
    """On a model post-trained by the smoke study, with its tokenizer, chat template and end-of-turn stops, the
    static-cache loop's greedy completions of held-out prompts equal the growing-cache loop's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from postfit.config import EvalOptions
    from postfit.evaluation.generate import decode
    from postfit.evaluation.prompts import prompt_texts
    from postfit.evaluation.static import decode_static
    from postfit.io import read_jsonl
    from postfit.layout import StudyDir
    from postfit.models import end_of_turn_ids

    study = StudyDir(smoke_dir)
    run = next(r for r in study.run_dirs() if r.trained())
    model = AutoModelForCausalLM.from_pretrained(run.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(run.model)
    tokenizer.padding_side = "left"
    prompts = sorted({r["prompt"] for r in read_jsonl(run.samples)})[:24]
    texts, raw = prompt_texts(tokenizer, prompts)
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=raw)
    stops = end_of_turn_ids(tokenizer, model.generation_config)
    opts = EvalOptions(max_new_tokens=32)
    want = decode(model, enc["input_ids"], enc["attention_mask"], opts, stops)
    assert len({len(r) for r in want}) >= 2, "the test needs rows that stop at different steps"
    assert decode_static(model, enc["input_ids"], enc["attention_mask"], opts, stops, graph=False) == want


def test_samples_by_split_draws_each_splits_own_number_of_samples(monkeypatch):
    """`eval.samples_by_split` gives the named splits their own n (0: greedy only), `samples` the others; each call
    asks the model for exactly that many, and the rows carry sample indices 0..n-1 after the greedy -1."""
    from postfit.config import EvalOptions
    from postfit.evaluation import generate as gen_module
    from postfit.evaluation.prompts import Completion
    from postfit.item import Item

    asked = []

    def fake(model, tokenizer, prompts, opts, *, n=1, sample=False, seed=0, label=""):
        asked.append((label.split()[0], n, sample))
        return [[Completion("Answer: 4" if j % 2 else "Answer: 5", 3, True) for j in range(n)] for _ in prompts]

    monkeypatch.setattr(gen_module, "generate_completions", fake)
    items = {s: [Item(f"{s}/{i}", "tasks", "math", f"q{i}", s, answer="4") for i in range(3)]
             for s in ("id_test", "ood_near", "ood_format")}  # fmt: skip
    opts = EvalOptions(samples=2, samples_by_split={"id_test": 8, "ood_format": 0}, k=[2, 8])
    rows = gen_module.evaluate_splits(None, None, items, opts, seed=0)
    assert asked == [("id_test", 1, False), ("id_test", 8, True), ("ood_near", 1, False), ("ood_near", 2, True),
                     ("ood_format", 1, False)]  # fmt: skip
    for split, n in {"id_test": 8, "ood_near": 2, "ood_format": 0}.items():
        for i in range(3):
            got = sorted(r["sample"] for r in rows if r["split"] == split and r["item"] == f"{split}/{i}")
            assert got == list(range(-1, n))
    assert sum(r["correct"] for r in rows if r["split"] == "id_test" and r["sample"] >= 0) == 3 * 4
