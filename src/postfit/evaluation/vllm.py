"""Evaluation generation with vLLM (`eval.backend: vllm`, `postfit eval --backend vllm`): offline `LLM.generate`.

The same prompts (chat template), stop tokens (`models.end_of_turn_ids`), `n` samples, temperature, top-p and
seed as the transformers backend. What stays equal: the prompts, stopping and the estimators; greedy outputs can
differ where two tokens' logits tie to the last digits (different kernels), so pass@1 may move by an item or two,
and sampled completions differ from transformers' (another random stream), pass@k only within noise. vLLM runs on
the main process of a launch (its own tensor parallelism, not the launcher's); the others receive its outputs.
CUDA only, with the `gpu` extra.
"""

from __future__ import annotations

import functools

from postfit.errors import UserError

INSTALL = "pip install -e '.[gpu]'"


def require_vllm(key: str) -> None:
    """UserError naming `key` and the fix when vLLM is missing or there is no CUDA device."""
    import torch

    try:
        import vllm  # noqa: F401
    except ImportError:
        raise UserError(f"{key}: vLLM is not installed; install the gpu extra ({INSTALL})") from None
    if not torch.cuda.is_available():
        raise UserError(f"{key}: vLLM needs a CUDA GPU and none is visible; use the transformers backend (hf)")


@functools.cache
def _engine(path: str):
    from vllm import LLM

    return LLM(model=path, gpu_memory_utilization=0.85)  # samples are seeded per request (SamplingParams.seed)


def vllm_generator(model, model_path: str | None, tokenizer, opts, seed: int):
    """gen(prompts, n, sample, label) -> completions per prompt, from vLLM on `model_path`."""
    from postfit.distributed import from_main
    from postfit.evaluation.prompts import Completion, prompt_texts
    from postfit.models import end_of_turn_ids

    require_vllm("eval.backend")
    if model_path is None:
        raise UserError("eval.backend: vllm evaluates a saved model; this model has no directory")
    stops = end_of_turn_ids(tokenizer, getattr(model, "generation_config", None))
    if model is not None:
        model.to("cpu")  # vLLM takes the GPU's memory for itself

    def gen(prompts, n=1, sample=False, label=""):
        def run():
            from vllm import SamplingParams

            params = SamplingParams(n=n, temperature=opts.temperature if sample else 0.0,
                                    top_p=opts.top_p if sample else 1.0, max_tokens=opts.max_new_tokens,
                                    stop_token_ids=stops, skip_special_tokens=True,
                                    seed=seed if sample else None)  # fmt: skip
            outs = _engine(str(model_path)).generate(prompt_texts(tokenizer, prompts)[0], params, use_tqdm=False)
            return [[Completion(o.text, len(o.token_ids), o.finish_reason == "stop") for o in out.outputs]
                    for out in outs]  # fmt: skip

        return from_main(run)

    return gen
