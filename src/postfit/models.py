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


def preset_config(preset: str, arch: str, tokenizer, max_positions: int):
    """A transformers config for a preset, wired to the tokenizer's special tokens."""
    from transformers import LlamaConfig, Qwen3Config

    dims = dict(PRESETS[preset])
    dims["vocab_size"] = len(tokenizer)
    cls = {"qwen3": Qwen3Config, "llama": LlamaConfig}[arch]
    return cls(
        **dims,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
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


def load_tokenizer(name_or_path: str | Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path))
    except OSError as e:
        raise hub_error(str(name_or_path), e) from None
    if tok.chat_template is None:
        raise UserError(f"model.name_or_path: the tokenizer of {name_or_path!r} has no chat template")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_variant(base: str | Path, init: str, seed: int, dtype: str = "float32") -> Variant:
    """Load `base` (a model directory or hub id) as is (`pretrained`) or re-initialised (`random`), in `dtype`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, set_seed

    tokenizer = load_tokenizer(base)
    torch_dtype = getattr(torch, dtype)
    try:
        if init.partition("@")[0] == "pretrained":  # pretrained@TOKENS: `base` is that checkpoint
            model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch_dtype)
        elif init == "random":
            config = AutoConfig.from_pretrained(str(base))
            set_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        else:
            raise UserError(f"grid.inits: unknown init {init!r}; expected one of ['pretrained', 'random']")
    except OSError as e:
        raise hub_error(str(base), e) from None
    params = sum(p.numel() for p in model.parameters())
    return Variant(model, tokenizer, params, config_hash(model.config))
