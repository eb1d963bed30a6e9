"""How far each evaluated item lies from the data a run was post-trained on: the x axis of the report's
accuracy-against-distance curve (distribution fitting, measured as a curve).

Three distances, each to the item's nearest neighbour among the training items:

- text (any data, real or procedural): 1 minus the largest word n-gram Jaccard similarity between the item's
  n-gram set (prompt and reference answer, `words` of postfit.analysis.contamination) and one training item's.
  n = 3 (`N`): items of one template share most of their 3-grams, and one changed operand or word breaks up to
  three of them, so the distance moves by a step per change; unrelated text shares few 3-grams. Jaccard, not
  containment: a longer item whose start repeats a training item (a fourth term) is not near it, nor a short one
  inside a longer training item. 0 means the same n-grams as a training item: a copy (the report flags it).
- tokens: the same Jaccard distance on n-grams of the token ids the model reads (the study's tokenizer, no special
  tokens). n = 4 (`TOKEN_N`): a word is one to a few tokens (a number several digits' tokens), so 4 tokens span
  about the 3 words of the text distance, while a change inside a number (12 -> 13) breaks fewer of them than a
  whole changed word: the distance as the model sees its input.
- structure (where the task has one, postfit.tasks.STRUCTURES): how many terms of the item differ from the
  nearest training item's, position by position, each missing or extra term counting one (for chain sums a term
  is an operand with the operator before it: one changed operand, one step); None for items without structure
  and for items posed in another frame than the training items' (a changed prompt is the text distance's).

`study_distances` computes them once per study, for every set of training data a run of the grid trains on
(`reference_sets`), and the study keeps them in data/distance.json; each run's evaluation samples carry theirs.
"""

from __future__ import annotations

from collections.abc import Callable

from postfit.analysis.contamination import TRAINING_SPLITS, words
from postfit.config.recipes import RL, SFT, trainers
from postfit.item import Item

N = 3
TOKEN_N = 4
CHUNK = 256  # evaluation items compared with every training item at once (structure): memory ~ CHUNK x train x terms


def item_text(item: Item) -> str:
    """What the text distance compares: the prompt and the reference answer."""
    return f"{item.prompt}\n{item.answer or ''}"


def word_grams(texts: list[str], n: int = N) -> list[set]:
    """The set of word n-grams of each text (`words`: lower-cased words and numbers)."""
    return [_ngrams(words(t), n) for t in texts]


def token_grams(texts: list[str], tokenizer, n: int = TOKEN_N) -> list[set]:
    """The set of token-id n-grams of each text, as `tokenizer` splits it (no special tokens)."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return [_ngrams(row, n) for row in ids]


def _ngrams(seq, n: int) -> set[tuple]:
    m = min(n, len(seq))  # a sequence shorter than n is one gram
    return {tuple(seq[i : i + m]) for i in range(len(seq) - m + 1)} if len(seq) else set()


def jaccard_distances(grams: list[set], train: list[set]) -> list[float]:
    """1 - the largest Jaccard similarity of each n-gram set of `grams` with one set of `train` (1.0 without a
    shared n-gram), through an inverted index of `train`."""
    import numpy as np

    index: dict[tuple, list[int]] = {}  # n-gram -> the training items that have it
    sizes = np.array([len(g) for g in train], dtype=float)
    for j, theirs in enumerate(train):
        for g in theirs:
            index.setdefault(g, []).append(j)
    postings = {g: np.array(js, dtype=np.int64) for g, js in index.items()}
    out = []
    for ours in grams:
        hits = [postings[g] for g in ours if g in postings]
        if not hits:
            out.append(1.0)
            continue
        shared = np.bincount(np.concatenate(hits), minlength=len(train))
        out.append(round(1.0 - float((shared / (len(ours) + sizes - shared)).max()), 6))
    return out


def structure_distances(items: list[Item], train: list[Item], terms: Callable[[Item], tuple | None]) -> list:
    """For each item with terms (`terms(item)`, a tuple of hashables) posed in a training item's frame (the prompt
    around the question), the fewest differing terms to a training item with terms: position by position, plus one
    per missing or extra term; None where either side has none."""
    import numpy as np

    frames = {_frame(it) for it in train}
    ours = [terms(it) if _frame(it) in frames else None for it in items]
    theirs = [t for t in map(terms, train) if t is not None]
    if not theirs:
        return [None] * len(items)
    codes: dict = {}
    longest = max(len(t) for t in [*theirs, *(t for t in ours if t is not None)])

    def encode(rows: list[tuple]) -> np.ndarray:  # -1 pads: a pad against a term is one difference
        out = np.full((len(rows), longest), -1, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = [codes.setdefault(x, len(codes)) for x in row]
        return out

    train_codes = encode(theirs)
    known = [i for i, t in enumerate(ours) if t is not None]
    result: list = [None] * len(items)
    for start in range(0, len(known), CHUNK):
        rows = known[start : start + CHUNK]
        diff = (encode([ours[i] for i in rows])[:, None, :] != train_codes[None, :, :]).sum(-1)
        for i, d in zip(rows, diff.min(1).tolist(), strict=True):
            result[i] = int(d)
    return result


def _frame(item: Item) -> str:
    """The prompt around the question: items posed in another frame (ood_format, ood_rule) have no structural
    distance, which counts terms only."""
    return item.prompt.replace(item.question, "\0") if item.question else item.prompt


def reference_sets(study) -> dict[str, tuple[tuple[str, ...], int | None]]:
    """name -> (training splits, examples) for each distinct set of post-training data a run of the study trains
    on: "train" (SFT), "rl", "train+rl", with "[:N]" for a data-scaling run's first N SFT examples. A run without
    post-training (`none`) is measured against the study's SFT data (`reference_of`)."""
    from postfit.config.grid import grid_runs

    return {reference_of(run): _reference(run) for run in grid_runs(study)}


def _reference(run) -> tuple[tuple[str, ...], int | None]:
    used = trainers(run.recipe)
    splits = tuple(s for s, t in zip(TRAINING_SPLITS, (SFT, RL), strict=True) if t in used) or ("train",)
    return splits, run.examples if "train" in splits else None


def reference_of(run) -> str:
    """The name of the training data `run` is measured against (a key of `reference_sets`)."""
    splits, examples = _reference(run)
    return "+".join(splits) + (f"[:{examples}]" if examples else "")


def study_distances(study, splits: dict[str, list[Item]], tokenizer=None, n: int = N) -> dict:
    """{"n": n, "token_n": TOKEN_N, "sets": {reference name: {split: {item id: [text, structure, tokens]}}}} for
    every evaluation split of `splits` and every reference set of the study's grid whose training splits exist; the
    token distance is null without a `tokenizer`."""
    from postfit.tasks import structure_terms

    evals = {s: items for s, items in splits.items() if s not in TRAINING_SPLITS}
    # Every evaluation split in one call per reference set, so its training items are indexed once; each item's
    # n-grams are made once for all the sets.
    pool = {(s, it.id): it for s, split_items in splits.items() for it in split_items}  # every item, once
    texts = [item_text(it) for it in pool.values()]
    words_of = dict(zip(pool, word_grams(texts, n), strict=True))
    tokens_of = dict(zip(pool, token_grams(texts, tokenizer), strict=True)) if tokenizer is not None else None
    keys = [(s, it.id) for s, split_items in evals.items() for it in split_items]
    sets: dict = {}
    for name, (names, examples) in reference_sets(study).items():
        names = [s if s in splits else "train" for s in names]  # GRPO without an `rl` split trains on `train`
        if not all(s in splits for s in names):  # e.g. a `none` run of a study without SFT data
            continue
        train = [(s, it.id) for s in dict.fromkeys(names)
                 for it in (splits[s][:examples] if s == "train" and examples else splits[s])]  # fmt: skip
        text = jaccard_distances([words_of[k] for k in keys], [words_of[k] for k in train])
        structure = structure_distances([pool[k] for k in keys], [pool[k] for k in train], structure_terms)
        token = (jaccard_distances([tokens_of[k] for k in keys], [tokens_of[k] for k in train])
                 if tokens_of is not None else [None] * len(keys))  # fmt: skip
        sets[name] = {split: {} for split in evals}
        for (split, item), row in zip(keys, zip(text, structure, token, strict=True), strict=True):
            sets[name][split][item] = list(row)
    return {"n": n, "token_n": TOKEN_N, "sets": sets}


def annotate(samples: list[dict], distances: dict, reference: str) -> list[dict]:
    """The sample rows with "distance" (text), "structure" and "token_distance" of their item against `reference`;
    null for an item without one (no training data to measure against: a checkpoint evaluated by `postfit eval`;
    no token distance in a study measured before postfit stored them)."""
    table = distances.get("sets", {}).get(reference, {})
    out = []
    for row in samples:
        text, structure, token = [*table.get(row["split"], {}).get(row["item"], ()), None, None, None][:3]
        out.append({**row, "distance": text, "structure": structure, "token_distance": token})
    return out
