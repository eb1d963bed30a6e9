"""postfit's own pre-training of a preset: a byte-level BPE tokenizer and a causal LM on a text corpus.

Both are saved with `save_pretrained`, so plain `transformers` loads them. Digits are split into
single tokens before BPE: with merged digits a tiny model barely learns arithmetic (see ANCHORS).
"""

from __future__ import annotations

import logging
from pathlib import Path

from postfit.config import PretrainConfig
from postfit.data.corpus import corpus_documents, provenance
from postfit.distributed import is_main, main_first
from postfit.io import atomic_dir, atomic_write_json, read_json, write_jsonl
from postfit.layout import BaseDir
from postfit.train.common import discard_checkpoints, per_device_batch, train_and_save, trainer_kwargs
from postfit.ui import stage

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


# Tokenizers shaped like real checkpoints' (special tokens, chat template, eos vs end of turn), for tests and
# bench/gpu_check.py to build offline stand-ins of a Qwen3 or Llama-3 base model, or a base model without a
# template. Pre-training presets use "postfit".
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
TOKENIZER_SHAPES: dict[str, dict] = {
    "postfit": {"special": SPECIAL_TOKENS, "eos": "<|end|>", "pad": DOC_SEP, "template": CHAT_TEMPLATE},
    # Qwen3 base: eos <|endoftext|>, turns end with <|im_end|>, thinking tags.
    "qwen3": {"special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
              "eos": "<|endoftext|>", "pad": "<|endoftext|>", "template": CHATML},
    # Llama-3 base: eos <|end_of_text|>, turns end with <|eot_id|>, a BOS the template writes.
    "llama3": {"special": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"], "eos": "<|end_of_text|>", "pad": "<|end_of_text|>",
               "bos": "<|begin_of_text|>", "template": LLAMA3},
    "base": {"special": ["<|endoftext|>"], "eos": "<|endoftext|>", "pad": "<|endoftext|>", "template": None},
}  # fmt: skip


def train_tokenizer(text: str, vocab_size: int, shape: str = "postfit"):
    """Byte-level BPE (no unknown tokens) with single-digit tokens, with the special tokens, eos and chat template
    of `shape` (TOKENIZER_SHAPES; postfit's own by default)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = TOKENIZER_SHAPES[shape]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=spec["special"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    chunk = 100_000
    tok.train_from_iterator((text[i : i + chunk] for i in range(0, len(text), chunk)), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=spec["eos"], pad_token=spec["pad"],
                                   bos_token=spec.get("bos"))  # fmt: skip
    fast.chat_template = spec["template"]
    return fast


HELDOUT_BLOCKS = 32  # blocks of the corpus's end held out of pre-training, for its held-out loss


def _separator(tokenizer) -> int:
    """What joins documents: DOC_SEP, or, in a tokenizer without it, its eos (as real checkpoints were pre-trained)."""
    return tokenizer.convert_tokens_to_ids(DOC_SEP) if DOC_SEP in tokenizer.get_vocab() else tokenizer.eos_token_id


def _hold_out(ids: list[int], seq_len: int) -> tuple[list[int], list[list[int]]]:
    """(the tokens trained on, the held-out blocks): the corpus's last tokens, up to HELDOUT_BLOCKS blocks and at
    most a tenth of it."""
    held = min(HELDOUT_BLOCKS, len(ids) // (10 * seq_len))
    heldout = [ids[len(ids) - (i + 1) * seq_len : len(ids) - i * seq_len] for i in reversed(range(held))]
    return ids[: len(ids) - held * seq_len], heldout


def pack(tokenizer, docs: list[str], seq_len: int, n_tokens: int) -> tuple[list[list[int]], list[list[int]]]:
    """(training blocks of `seq_len` covering `n_tokens`, held-out blocks): documents joined by `_separator`; the
    held-out blocks are the corpus's last tokens (`_hold_out`), never trained on; the rest repeats if short."""
    sep = _separator(tokenizer)
    ids: list[int] = []
    for doc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(doc)
        ids.append(sep)
    if not ids:
        raise ValueError("empty corpus")
    ids, heldout = _hold_out(ids, seq_len)
    n_blocks = max(1, n_tokens // seq_len)
    stream = ids * (n_blocks * seq_len // len(ids) + 1)
    return [stream[i * seq_len : (i + 1) * seq_len] for i in range(n_blocks)], heldout


def heldout_blocks(tokenizer, docs: list[str], seq_len: int) -> list[list[int]]:
    """`pack`'s held-out blocks, tokenizing only the corpus's last documents: once they hold ten times the blocks,
    the rest cannot change them (the default corpus: 0.2 s instead of 4 s)."""
    sep, need, tail, n = _separator(tokenizer), 10 * HELDOUT_BLOCKS * seq_len, [], 0
    for doc in reversed(docs):
        tail.append([*tokenizer(doc, add_special_tokens=False)["input_ids"], sep])
        n += len(tail[-1])
        if n >= need:
            break
    return _hold_out([t for doc in reversed(tail) for t in doc], seq_len)[1]


def ensure_heldout(cfg: PretrainConfig, base: BaseDir, tokenizer, docs: list[str] | None) -> None:
    """base/heldout.jsonl: the held-out blocks, one row each, so runs measure forgetting on them without reading
    the corpus again (made with the architecture; a base from before then gets it when its study is resumed)."""
    if base.heldout.exists() or not is_main():
        return
    blocks = heldout_blocks(tokenizer, docs or corpus_documents(cfg.corpus, cfg.corpus_chars), cfg.seq_len)
    write_jsonl(base.heldout, [{"block": i, "input_ids": b} for i, b in enumerate(blocks)])


def unigram_entropy(blocks: list[list[int]]) -> float:
    """Entropy in nats of the tokens' frequencies: the loss of a model that ignores context."""
    import numpy as np

    counts = np.bincount(np.concatenate([np.asarray(b) for b in blocks]))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def heldout_loss(model, blocks: list[list[int]], batch_size: int = 8) -> float | None:
    """Mean next-token cross-entropy (nats) of `model` on the held-out blocks; None without any."""
    import torch

    if not blocks:
        return None
    total, n = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(blocks), batch_size):
            ids = torch.tensor(blocks[i : i + batch_size], device=model.device)
            tokens = ids.shape[0] * (ids.shape[1] - 1)
            total += float(model(input_ids=ids, labels=ids).loss) * tokens
            n += tokens
    return total / n


def ensure_base(
    cfg: PretrainConfig, preset: str, arch: str, base_dir: Path, need_weights: bool, snapshots: list[int] = ()
) -> dict[str, Path]:
    """Build (or reuse) the preset's architecture directory and, if needed, its pre-trained weights.

    Returns {"random": dir with config + tokenizer, "pretrained": dir with weights} (the second only if needed),
    plus "pretrained@T": the weights after T tokens of the same run, for each T in `snapshots`.
    """
    from postfit.models import PRESETS, preset_config

    base = BaseDir(base_dir)
    arch_dir, model_dir = base.architecture, base.pretrained
    docs = None
    with main_first():  # the main process trains the tokenizer; the others then read it
        if not arch_dir.is_dir():
            with stage("tokenizer", f"a {PRESETS[preset]['vocab_size']}-token BPE vocabulary"):
                docs = corpus_documents(cfg.corpus, cfg.corpus_chars)
                tokenizer = train_tokenizer("\n\n".join(docs)[: cfg.tokenizer_chars], PRESETS[preset]["vocab_size"])
            config = preset_config(preset, arch, tokenizer, cfg.seq_len)
            with atomic_dir(arch_dir) as tmp:
                tokenizer.save_pretrained(tmp)
                config.save_pretrained(tmp)
                atomic_write_json(tmp / "corpus.json", provenance(cfg.corpus, docs))
        if not base.heldout.exists():
            from transformers import AutoTokenizer

            ensure_heldout(cfg, base, AutoTokenizer.from_pretrained(arch_dir), docs)
    dirs = {"random": arch_dir}
    if need_weights:
        if not base.meta.exists():  # written after the weights: a kill between them resumes
            docs = docs or corpus_documents(cfg.corpus, cfg.corpus_chars)
            pretrain(cfg, arch_dir, model_dir, base_dir, docs, snapshots)
        dirs["pretrained"] = model_dir
    for t in snapshots:
        dirs[f"pretrained@{t}"] = base.snapshot(t)
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
    for meta in (base / "snapshot.json", BaseDir(base.parent).meta):
        if meta.is_file():
            return int(read_json(meta)["tokens"])
    return None


def _snapshot_callback(steps: dict[int, int], out: Path, tokenizer, tokens_per_step: int):
    """Saves the weights at each snapshot step (before any checkpoint of that step, so a resume never skips one)."""
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            for t, step in steps.items():
                target = BaseDir(out).snapshot(t)
                if step == state.global_step and not target.is_dir() and state.is_world_process_zero:
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
    blocks, heldout = pack(tokenizer, docs, cfg.seq_len, cfg.tokens)
    steps = max(1, len(blocks) // cfg.batch_size)
    dataset = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    set_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(arch_dir), dtype=torch.float32)
    initial_loss = heldout_loss(model, heldout)  # the random init pre-training starts from
    model.train()
    per_device, accumulation = per_device_batch(cfg.batch_size, None, "pretrain")
    args = TrainingArguments(
        gradient_accumulation_steps=accumulation,
        **trainer_kwargs(
            BaseDir(base_dir).checkpoints,
            steps=steps,
            batch_size=per_device,
            learning_rate=cfg.learning_rate,
            scheduler="cosine",
            warmup_ratio=0.05,
            checkpoint_steps=cfg.checkpoint_steps,
            logging_steps=max(1, steps // 50),
            seed=0,
            weight_decay=0.1,
        ),
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    if snapshots:
        per_step = cfg.batch_size * cfg.seq_len
        trainer.add_callback(_snapshot_callback(snapshot_steps(cfg, snapshots), base_dir, tokenizer, per_step))
    tokens = steps * cfg.batch_size * cfg.seq_len
    ckpts, train_log = BaseDir(base_dir).checkpoints, BaseDir(base_dir).log
    what = f"{model.num_parameters():,} parameters on {tokens:,} tokens ({steps} steps)"
    stats = train_and_save(trainer, ckpts, model_dir, train_log, tokenizer, "pretrain", what)
    meta = {
        **stats,
        "tokens": tokens,
        "params": model.num_parameters(),
        "tokens_per_s": round(tokens / max(stats["runtime_s"], 1e-9), 1),
        "corpus": read_json(arch_dir / "corpus.json"),
        # Nats per token: a context-free model's loss, and the held-out corpus blocks' before and after.
        "unigram_entropy": round(unigram_entropy(blocks), 4),
        "heldout_tokens": len(heldout) * cfg.seq_len,
        "heldout_loss_random": None if initial_loss is None else round(initial_loss, 4),
        "heldout_loss_pretrained": None if not heldout else round(heldout_loss(model, heldout), 4),
    }
    if is_main():
        atomic_write_json(BaseDir(base_dir).meta, meta)  # marks pre-training as done (ensure_base)
    discard_checkpoints(ckpts)
    return meta


def stand_in_checkpoint(out_dir: Path, shape: str, cfg: PretrainConfig, preset: str = "nano",
                        arch: str = "qwen3", dims: dict | None = None) -> Path:  # fmt: skip
    """A model directory shaped like a real base checkpoint, built offline: a `preset` architecture (or `dims`
    over it: a real model's sizes) with a tokenizer of `shape` (TOKENIZER_SHAPES: "qwen3", "llama3", "base", ...),
    pre-trained by postfit for `cfg.tokens` tokens; its generation_config names only eos, as real base checkpoints'
    do. For tests and bench/gpu_check.py, which give it to a study as `model.name_or_path`."""
    from postfit.models import PRESETS, preset_config

    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return out_dir
    work = out_dir.with_name(out_dir.name + ".work")
    docs = corpus_documents(cfg.corpus, cfg.corpus_chars)
    tokenizer = train_tokenizer("\n\n".join(docs)[: cfg.tokenizer_chars], PRESETS[preset]["vocab_size"], shape)
    with atomic_dir(BaseDir(work).architecture) as tmp:
        tokenizer.save_pretrained(tmp)
        preset_config(preset, arch, tokenizer, cfg.seq_len, dims).save_pretrained(tmp)
        atomic_write_json(tmp / "corpus.json", provenance(cfg.corpus, docs))
    pretrain(cfg, BaseDir(work).architecture, out_dir, work, docs)
    return out_dir
