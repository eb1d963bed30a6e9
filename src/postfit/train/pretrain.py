"""postfit's own pre-training of a preset: a byte-level BPE tokenizer and a causal LM on a text corpus.

Both are saved with `save_pretrained`, so plain `transformers` loads them. Digits are split into
single tokens before BPE: with merged digits a tiny model barely learns arithmetic (see ANCHORS).
"""

from __future__ import annotations

import logging
from pathlib import Path

from postfit.config import PretrainConfig
from postfit.io import atomic_dir, atomic_write_json, read_json
from postfit.train.common import train_and_save, trainer_kwargs
from postfit.train.corpus import corpus_documents, provenance

log = logging.getLogger(__name__)

DOC_SEP = "<|endoftext|>"  # separates documents in pre-training; also the padding token
SPECIAL_TOKENS = [DOC_SEP, "<|user|>", "<|assistant|>", "<|end|>"]
# `{% generation %}` marks assistant tokens, so TRL's assistant-only loss works with this template too.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}<|assistant|>{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}"
    "{% else %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(text: str, vocab_size: int):
    """Byte-level BPE (no unknown tokens) with single-digit tokens and postfit's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    chunk = 100_000
    tok.train_from_iterator((text[i : i + chunk] for i in range(0, len(text), chunk)), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token=DOC_SEP)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def pack(tokenizer, docs: list[str], seq_len: int, n_tokens: int) -> list[list[int]]:
    """Token blocks of `seq_len` covering `n_tokens`, documents joined by DOC_SEP, repeating the corpus if short."""
    sep = tokenizer.convert_tokens_to_ids(DOC_SEP)
    ids: list[int] = []
    for doc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(doc)
        ids.append(sep)
    if not ids:
        raise ValueError("empty corpus")
    n_blocks = max(1, n_tokens // seq_len)
    stream = ids * (n_blocks * seq_len // len(ids) + 1)
    return [stream[i * seq_len : (i + 1) * seq_len] for i in range(n_blocks)]


def ensure_base(
    cfg: PretrainConfig, preset: str, arch: str, base_dir: Path, need_weights: bool, snapshots: list[int] = ()
) -> dict[str, Path]:
    """Build (or reuse) the preset's architecture directory and, if needed, its pre-trained weights.

    Returns {"random": dir with config + tokenizer, "pretrained": dir with weights} (the second only if needed),
    plus "pretrained@T": the weights after T tokens of the same run, for each T in `snapshots`.
    """
    from postfit.models import PRESETS, preset_config

    arch_dir, model_dir = base_dir / "architecture", base_dir / "pretrained"
    docs = None
    if not arch_dir.is_dir():
        docs = corpus_documents(cfg.corpus, cfg.corpus_chars)
        tokenizer = train_tokenizer("\n\n".join(docs)[: cfg.tokenizer_chars], PRESETS[preset]["vocab_size"])
        config = preset_config(preset, arch, tokenizer, cfg.seq_len)
        with atomic_dir(arch_dir) as tmp:
            tokenizer.save_pretrained(tmp)
            config.save_pretrained(tmp)
            atomic_write_json(tmp / "corpus.json", provenance(cfg.corpus, docs))
    dirs = {"random": arch_dir}
    if need_weights:
        if not model_dir.is_dir():
            docs = docs or corpus_documents(cfg.corpus, cfg.corpus_chars)
            pretrain(cfg, arch_dir, model_dir, base_dir, docs, snapshots)
        dirs["pretrained"] = model_dir
    for t in snapshots:
        dirs[f"pretrained@{t}"] = base_dir / f"pretrained@{t}"
        if not dirs[f"pretrained@{t}"].is_dir():  # a finished pre-training run that did not save it
            raise RuntimeError(f"{base_dir}: no checkpoint pretrained@{t}; delete {model_dir} to pre-train again")
    return dirs


def snapshot_steps(cfg: PretrainConfig, snapshots: list[int]) -> dict[int, int]:
    """tokens T -> the optimiser step after which the model has seen (about) T tokens."""
    per_step = cfg.batch_size * cfg.seq_len
    return {t: max(1, round(t / per_step)) for t in snapshots}


def pretrain_tokens(init: str, base: str | Path) -> int | None:
    """Tokens of postfit's pre-training behind a run's initial weights: 0 for random, None for outside models."""
    if init == "random":
        return 0
    base = Path(base)
    for meta in (base / "snapshot.json", base.parent / "meta.json"):
        if meta.is_file():
            return int(read_json(meta)["tokens"])
    return None


def _snapshot_callback(steps: dict[int, int], out: Path, tokenizer, tokens_per_step: int):
    """Saves the weights at each snapshot step (before any checkpoint of that step, so a resume never skips one)."""
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            for t, step in steps.items():
                target = out / f"pretrained@{t}"
                if step == state.global_step and not target.is_dir():
                    with atomic_dir(target) as tmp:
                        model.save_pretrained(tmp)
                        tokenizer.save_pretrained(tmp)
                        atomic_write_json(tmp / "snapshot.json", {"tokens": step * tokens_per_step, "step": step})

    return Snapshots()


def pretrain(
    cfg: PretrainConfig, arch_dir: Path, model_dir: Path, base_dir: Path, docs: list[str], snapshots: list[int] = ()
) -> dict:
    """Train the architecture in `arch_dir` on `docs` for `cfg.tokens` tokens; resumable from checkpoints.

    Saves base_dir/pretrained@T after about T tokens for each T in `snapshots` (the pre-training-budget axis).
    """
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    tokenizer = AutoTokenizer.from_pretrained(arch_dir)
    blocks = pack(tokenizer, docs, cfg.seq_len, cfg.tokens)
    steps = max(1, len(blocks) // cfg.batch_size)
    dataset = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    set_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(arch_dir), dtype=torch.float32)
    args = TrainingArguments(
        **trainer_kwargs(
            base_dir / "pretrain_checkpoints",
            steps=steps,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            scheduler="cosine",
            warmup_ratio=0.05,
            checkpoint_steps=cfg.checkpoint_steps,
            logging_steps=max(1, steps // 50),
            seed=0,
            weight_decay=0.1,
        )
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    if snapshots:
        per_step = cfg.batch_size * cfg.seq_len
        trainer.add_callback(_snapshot_callback(snapshot_steps(cfg, snapshots), base_dir, tokenizer, per_step))
    tokens = steps * cfg.batch_size * cfg.seq_len
    log.info("pre-training %s parameters on %d tokens (%d steps)", model.num_parameters(), tokens, steps)
    ckpts, train_log = base_dir / "pretrain_checkpoints", base_dir / "pretrain_log.jsonl"
    stats = train_and_save(trainer, ckpts, model_dir, train_log, tokenizer)
    meta = {
        **stats,
        "tokens": tokens,
        "params": model.num_parameters(),
        "tokens_per_s": round(tokens / max(stats["runtime_s"], 1e-9), 1),
        "corpus": read_json(arch_dir / "corpus.json"),
    }
    atomic_write_json(base_dir / "meta.json", meta)
    return meta
