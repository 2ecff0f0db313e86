"""The `vllm` judge backend: vLLM offline (`vllm.LLM`), one engine per worker machine.

Exactness: vLLM reports log-probabilities of the raw distribution, computed before any sampling filter. Each
pair is one request with max_tokens=1 and `logprob_token_ids=[Yes, No]`: the engine returns exactly those two
tokens' raw log-probabilities, whatever their rank (top-k logprobs would miss an answer token outside the top
k), and P(Yes) follows from their difference. An engine without `logprob_token_ids` (vLLM before it existed)
gets each pair asked twice instead, forced to Yes and to No by `allowed_token_ids` (the forced token is sampled
and its raw log-probability returned): exact too, twice the requests. A query's pairs are submitted together in
query order, so the later ones reuse the cached prefix.

Images (a vision model): the pair goes as the chat-template text with its placeholders plus the decoded
images as `multi_modal_data`, in prompt order; vLLM's copy of the model's processor expands the placeholders.
vLLM hashes image content into its prefix-cache keys, so a query's image is cached too. Text-only pairs go as
token ids, the same ids the other backends feed.

Defaults that work on either device: the context length is the model's own maximum (a setting only lowers
it); on a CPU build, whose engine would otherwise reserve about 90% of the host's memory for its KV cache, the
cache is 1 GiB unless VLLM_CPU_KVCACHE_SPACE says otherwise, the context at most what that cache holds, and the
block size 32 (the CPU attention's smallest: its default, 128, caches a prefix only in whole blocks, so short
prompts barely hit the cache).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from judgemine.transforms.common.devices import DTYPES, Dtype
from judgemine.transforms.common.options import at_least, setting, within
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.base import Capabilities, JudgeBackend, JudgeModel
from judgemine.transforms.judge.chat import ChatPrompter
from judgemine.transforms.judge.scoring import JudgeAnswerError, context_length, forced_logprob, p_yes, where_fits

PREFIX_CACHE_COUNTERS = ("prefix_cache_queried_tokens", "prefix_cache_hit_tokens")
CPU_KV_CACHE_GIB, CPU_BLOCK_SIZE = "1", 32
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VLLMOptions:
    vllm_gpu_memory_utilization: float = setting(0.9, (), "vLLM memory fraction (on CPU builds: of host memory)",
                                                 range=within(0, 1))
    vllm_block_size: int = setting(0, (), "vLLM KV-cache block size; 0 = automatic: 32 on a CPU build (its smallest, "
                                   "so short prompts share cached prefixes), the engine's default on a GPU",
                                   range=at_least(0))
    judge_max_model_len: int = setting(0, ("judge",), "longest prompt the vLLM engine accepts, in tokens; 0 = the "
                                       "model's own maximum (a larger value is capped to it)", range=at_least(0))


def model_max_len(model_path: str) -> int:
    """The longest sequence the model's positions allow (a VLM's language model's)."""
    from transformers import AutoConfig
    return context_length(AutoConfig.from_pretrained(model_path, local_files_only=True))


def kv_bytes_per_token(model_path: str, dtype: Dtype) -> int | None:
    """What one token takes in the KV cache (keys and values of every layer), from the language model's config;
    None when the config does not say."""
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(model_path, local_files_only=True).get_text_config()
    layers, heads = getattr(config, "num_hidden_layers", None), getattr(config, "num_attention_heads", None)
    if not layers or not heads:
        return None
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * layers * kv_heads * head_dim * DTYPES[dtype].itemsize


def cpu_kv_cache_tokens(model_path: str, dtype: Dtype, block_size: int) -> int | None:
    """The longest sequence the CPU build's KV cache (VLLM_CPU_KVCACHE_SPACE GiB) holds: whole blocks, less the
    two the engine keeps back (vLLM refuses a context its cache cannot hold once)."""
    per_token = kv_bytes_per_token(model_path, dtype)
    if not per_token:
        return None
    space = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or CPU_KV_CACHE_GIB) * 2**30
    return max(int(space // (per_token * block_size)) - 2, 1) * block_size


def engine_settings(model_path: str, options: VLLMOptions, dtype: Dtype = "float32") -> dict[str, Any]:
    """Context length, block size and (on a CPU build) KV-cache size that work without any flag. On a CPU build
    the context defaults to what the cache holds, where that is less than the model's maximum (judge prompts are
    a few hundred tokens; a 1.5B fp32 model's 32,768 positions need 1.75 GiB of cache)."""
    longest = model_max_len(model_path)
    if options.judge_max_model_len > longest:
        log.warning("judge: --judge-max-model-len %d is above the model's %d positions; using %d",
                    options.judge_max_model_len, longest, longest)
    kwargs: dict[str, Any] = {"max_model_len": min(options.judge_max_model_len or longest, longest)}
    if torch.cuda.is_available():
        if options.vllm_block_size:
            kwargs["block_size"] = options.vllm_block_size
    else:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
        kwargs["block_size"] = options.vllm_block_size or CPU_BLOCK_SIZE
        held = cpu_kv_cache_tokens(model_path, dtype, kwargs["block_size"])
        if not options.judge_max_model_len and held and held < kwargs["max_model_len"]:
            log.info("judge: context %d tokens, what the CPU KV cache of %s GiB holds (the model allows %d; "
                     "VLLM_CPU_KVCACHE_SPACE or --judge-max-model-len change it)", held,
                     os.environ["VLLM_CPU_KVCACHE_SPACE"], longest)
            kwargs["max_model_len"] = held
    return kwargs


class VLLMJudge(JudgeBackend):
    name = "vllm"
    capabilities = Capabilities(images=True, shared_per_machine=True, reports=PREFIX_CACHE_COUNTERS,
                                models=("chat", "vision-language"))
    Options = VLLMOptions

    def __init__(self, model: JudgeModel, options: VLLMOptions = VLLMOptions(), seed: int = 0) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM, SamplingParams
        self.prompter = ChatPrompter.for_model(model)
        kwargs: dict[str, Any] = {"dtype": model.dtype, "enable_prefix_caching": True,
                                  "gpu_memory_utilization": options.vllm_gpu_memory_utilization, "seed": seed,
                                  "disable_log_stats": False, "enforce_eager": not torch.cuda.is_available(),
                                  **engine_settings(model.path, options, model.dtype)}
        if self.prompter.vision_model:
            kwargs["limit_mm_per_prompt"] = {"image": 2}  # the query's and the candidate's
        self.llm = LLM(model.path, **kwargs)
        self.max_len = kwargs["max_model_len"]
        self._answers = [self.prompter.yes_id, self.prompter.no_id]
        try:
            self._asked: Any = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=self._answers)
        except TypeError:  # an older engine: each answer forced in its own request
            log.warning("judge: this vLLM has no logprob_token_ids; each pair is asked twice (Yes, No)")
            self._asked = None
        self._force = {tok: SamplingParams(max_tokens=1, temperature=0.0, logprobs=0, allowed_token_ids=[tok])
                       for tok in self._answers}

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        """Pairs whose prompt is longer than the engine's context are refused (NaN): text pairs by their token
        count, image pairs (whose image tokens vLLM's processor counts) when the engine refuses them."""
        from vllm.inputs import TextPrompt, TokensPrompt
        if not queries:
            return np.zeros(0, np.float32)
        self.prompter.check(queries, candidates, "vllm")
        prompts: list[Any] = []
        lengths: list[int] = []
        for q, c in zip(queries, candidates):
            paths = self.prompter.image_paths(q, c)
            if paths:
                prompts.append(TextPrompt(prompt=self.prompter.text(q, c),
                                          multi_modal_data={"image": [self.prompter.images.get(p) for p in paths]}))
                lengths.append(0)  # counted by the engine
            else:
                prompts.append(TokensPrompt(prompt_token_ids=self.prompter.token_ids(q, c)))
                lengths.append(len(prompts[-1]["prompt_token_ids"]))

        def scored(idx: list[int]) -> np.ndarray:
            try:
                return self._scores([prompts[i] for i in idx])
            except ValueError as e:
                if "longer than the maximum model length" not in str(e) or len(idx) == 1:
                    raise
            return np.array([self._scores_or_nan(prompts[i]) for i in idx], np.float32)
        return where_fits(lengths, self.max_len - 1, scored)  # room for the answer token

    def _scores(self, prompts: list[Any]) -> np.ndarray:
        """One request per prompt for the two answer tokens' log-probabilities (or two forced requests, on an
        engine without logprob_token_ids); the chat template is the only source of special tokens, as for the
        token-id prompts."""
        if self._asked is None:
            return self._forced(prompts)
        outputs = self.llm.generate(prompts, self._asked, use_tqdm=False,
                                    tokenization_kwargs={"add_special_tokens": False})
        pairs = np.array([[_logprob_of(o.outputs[0], t) for t in self._answers] for o in outputs], np.float64)
        return p_yes(pairs[:, 0], pairs[:, 1])

    def _forced(self, prompts: list[Any]) -> np.ndarray:
        tokens = [self.prompter.yes_id, self.prompter.no_id] * len(prompts)
        outputs = self.llm.generate([p for p in prompts for _ in range(2)], [self._force[t] for t in tokens],
                                    use_tqdm=False, tokenization_kwargs={"add_special_tokens": False})
        logprobs = np.array([_logprob(o.outputs[0], t) for o, t in zip(outputs, tokens)])
        return p_yes(logprobs[0::2], logprobs[1::2])

    def _scores_or_nan(self, prompt: Any) -> float:
        try:
            return float(self._scores([prompt])[0])
        except ValueError as e:
            if "longer than the maximum model length" not in str(e):
                raise
            return float("nan")

    def counters(self) -> dict[str, float]:
        """The engine's own prefix-cache counters: queried and hit prompt tokens."""
        values = {m.name: m.value for m in self.llm.get_metrics()
                  if m.name in ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits")}
        return {"prefix_cache_queried_tokens": values.get("vllm:prefix_cache_queries", 0),
                "prefix_cache_hit_tokens": values.get("vllm:prefix_cache_hits", 0)}


def _logprob_of(completion: Any, token: int) -> float:
    """An asked token's raw log-probability from the first generated position."""
    entry = completion.logprobs[0].get(token) if completion.logprobs else None
    if entry is None or not np.isfinite(entry.logprob):
        raise JudgeAnswerError(f"vLLM returned no log-probability for the answer token {token}")
    return float(entry.logprob)


def _logprob(completion: Any, token: int) -> float:
    returned = completion.token_ids[0] if completion.token_ids else None
    entry = completion.logprobs[0].get(token) if completion.logprobs else None
    return forced_logprob(returned, None if entry is None else entry.logprob, token, "vLLM")
