"""Build the same architecture in two initialisations: pre-trained weights or random weights.

Random init is `AutoModelForCausalLM.from_config` on the pre-trained model's own config, seeded,
with the same tokenizer: only the weights differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from postfit.errors import UserError

log = logging.getLogger(__name__)

# Tiny Qwen3/Llama-style shapes. Digits are single tokens (see train/pretrain.py), so a small vocab suffices.
PRESETS: dict[str, dict] = {
    "nano": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=16, intermediate_size=192, vocab_size=512),
    "micro": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=2,
                  head_dim=32, intermediate_size=512, vocab_size=2048),
    "small": dict(hidden_size=384, num_hidden_layers=8, num_attention_heads=6, num_key_value_heads=2,
                  head_dim=64, intermediate_size=1024, vocab_size=4096),
}  # fmt: skip

# Fields that describe provenance, not architecture: left out of the config hash.
_VOLATILE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "architectures", "use_cache"}


@dataclass
class Variant:
    model: object  # a transformers PreTrainedModel
    tokenizer: object
    params: int
    config_hash: str


def preset_config(preset: str, arch: str, tokenizer, max_positions: int, dims: dict | None = None):
    """A transformers config for a preset (or `dims` over it: a real model's sizes), wired to the tokenizer's
    special tokens."""
    from transformers import LlamaConfig, Qwen3Config

    sizes = {**PRESETS[preset], "vocab_size": len(tokenizer), "max_position_embeddings": max_positions,
             "tie_word_embeddings": True, **(dims or {})}  # fmt: skip
    cls = {"qwen3": Qwen3Config, "llama": LlamaConfig}[arch]
    return cls(
        **sizes,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def config_hash(config) -> str:
    data = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def hub_error(name: str, err: Exception, key: str = "model.name_or_path") -> UserError:
    """The model `name` (given at `key`: a study-file key or a command argument) can be neither found nor fetched."""
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face Hub is not reachable from here"
    return UserError(
        f"{key}: {name!r} is neither a local directory nor in the local Hugging Face cache, and {why}. "
        f"Fetch it where there is network (`hf download {name}`) and copy the cache (HF_HOME), or give a local "
        f"path. ({type(err).__name__}: {err})"
    )


def require_model(name: str, chat_template: str | None = None, key: str = "model.name_or_path") -> None:
    """The model `name` can be built here, as `build_variant` first builds it: its tokenizer and config load (from
    a local directory, the Hugging Face cache, or the Hub when online); else the UserError of `hub_error`. The
    weights are not read."""
    from transformers import AutoConfig

    load_tokenizer(name, chat_template)
    try:
        AutoConfig.from_pretrained(str(name))
    except (OSError, ValueError) as e:
        raise hub_error(str(name), e, key) from None


# A base model's tokenizer has no chat template; studies then talk to it in this plain format, its eos ending each
# reply (study option `model.chat_template` replaces it). `{% generation %}` marks the reply for assistant-only loss.
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %} {% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}"
    "{{ '\\n\\n' }}{% elif m['role'] == 'user' %}Question: {{ m['content'] }}\nAnswer:"
    "{% else %}{{ m['content'] }}{{ '\\n\\n' }}{% endif %}"
    "{% endfor %}"
)
_MARK = "\u2063postfit-reply\u2063"  # an assistant reply no template alters, to find what follows it


def load_tokenizer(name_or_path: str | Path, chat_template: str | None = None):
    """The tokenizer of a model directory or hub id, with a chat template: `chat_template` if given, else its own,
    else (a base model) postfit's plain format `PLAIN_TEMPLATE`."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path))
    except OSError as e:
        raise hub_error(str(name_or_path), e) from None
    if chat_template is not None:
        tok.chat_template = chat_template
    elif tok.chat_template is None:
        log.info("%s: no chat template (a base model); prompts use the plain `Question: ...\\nAnswer:` format",
                 name_or_path)  # fmt: skip
        tok.chat_template = PLAIN_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def end_of_turn_ids(tokenizer, generation_config=None) -> list[int]:
    """Every token id that ends a reply: the tokenizer's eos, the special tokens the chat template writes after an
    assistant message (`<|im_end|>` for ChatML, `<|eot_id|>` for Llama-3), and `generation_config`'s eos ids.

    A Qwen3 base tokenizer's eos is `<|endoftext|>` while its turns end with `<|im_end|>`: stopping on eos alone
    lets a fine-tuned model write past the end of its turn to the token limit.
    """
    ids: list[int] = []

    def add(value) -> None:
        for i in [value] if isinstance(value, int) else list(value or []):
            if i is not None and i not in ids:
                ids.append(int(i))

    add(tokenizer.eos_token_id)
    add(getattr(generation_config, "eos_token_id", None))
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": _MARK}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        tail = text.split(_MARK, 1)[1] if _MARK in text else ""
        special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        add([i for i in tokenizer(tail, add_special_tokens=False)["input_ids"] if i in special])
    return ids


def set_stop_tokens(model, tokenizer) -> None:
    """Make every generator of `model` (evaluation, TRL's GRPO rollouts, a saved checkpoint's generation_config)
    stop at the end of the turn."""
    model.generation_config.eos_token_id = end_of_turn_ids(tokenizer, model.generation_config)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def build_variant(base: str | Path, init: str, seed: int, dtype: str = "float32", chat_template: str | None = None,
                  attn_implementation: str | None = None) -> Variant:  # fmt: skip
    """Load `base` (a model directory or hub id) as is (`pretrained`) or re-initialised (`random`), in `dtype` with
    `attn_implementation` (null: transformers' default), with its tokenizer (`load_tokenizer`) and generation
    stopping at the end of a turn (`set_stop_tokens`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, set_seed

    tokenizer = load_tokenizer(base, chat_template)
    torch_dtype, attn = getattr(torch, dtype), attn_implementation
    try:
        if init.partition("@")[0] == "pretrained":  # pretrained@TOKENS: `base` is that checkpoint
            model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch_dtype, attn_implementation=attn)
        elif init == "random":
            config = AutoConfig.from_pretrained(str(base))
            set_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, attn_implementation=attn)
        else:
            raise UserError(f"grid.inits: unknown init {init!r}; expected one of ['pretrained', 'random']")
    except OSError as e:
        raise hub_error(str(base), e) from None
    set_stop_tokens(model, tokenizer)
    params = sum(p.numel() for p in model.parameters())
    return Variant(model, tokenizer, params, config_hash(model.config))
