"""Judge backends: (query, candidate) pairs to P(Yes) from the Yes/No logits, without Beam, so the same
code runs in the pipeline, in benchmarks and on a bare GPU machine.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from transforms.devices import DTYPES, resolve_device
from transforms.judge_prompt import Side, user_parts, user_text
from transforms.text import strip_image_tokens


def answer_token_id(tokenizer: Any, word: str) -> int:
    """The first token of `word` as the model would write it as its answer."""
    ids = tokenizer.encode(word, add_special_tokens=False)
    if not ids:
        raise ValueError(f"the judge tokenizer encodes {word!r} to no token")
    return ids[0]


class TransformersJudge:
    """A chat LM loaded with transformers; scores pairs in fp32 from the last-position logits."""

    def __init__(self, model_path: str, batch_size: int, dtype: str, device: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=DTYPES[dtype], local_files_only=True)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.yes_id = answer_token_id(self.tokenizer, "Yes")
        self.no_id = answer_token_id(self.tokenizer, "No")

    def prompt(self, query: Side, candidate: Side) -> str:
        return render_chat(self.tokenizer, query, candidate, vision=False)

    @torch.inference_mode()
    def yes_no_logits(self, prompts: Sequence[str]) -> np.ndarray:
        """(n, 2) fp32 logits of the Yes and No tokens at the next position, in the order of `prompts`."""
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = np.argsort([len(e) for e in encoded], kind="stable")
        out = np.zeros((len(prompts), 2), np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
            mask = batch["attention_mask"].to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=batch["input_ids"].to(self.device), attention_mask=mask,
                                position_ids=positions, logits_to_keep=1).logits[:, -1, :]
            out[idx] = logits[:, [self.yes_id, self.no_id]].float().cpu().numpy()
        return out

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.float32)
        require_text(queries, candidates, "transformers text")
        logits = torch.from_numpy(self.yes_no_logits([self.prompt(q, c) for q, c in zip(queries, candidates)]))
        return torch.sigmoid(logits[:, 0] - logits[:, 1]).numpy()  # = exp(y) / (exp(y) + exp(n)), fp32


class TransformersVLMJudge:
    """A chat VLM (Qwen2-VL family, or any with a processor class: Idefics3 / SmolVLM, LLaVA, ...): the SPEC's
    turn with the query and candidate images in place, batched with left padding, scored from the
    last-position Yes/No logits in fp32. Batches are bucketed by image count, image area and prompt length."""

    def __init__(self, model_path: str, batch_size: int, dtype: str, device: str, image_root: str = "") -> None:
        from transforms.images import DecodedImages
        from transforms.vlm import load_vlm_inputs
        self.vlm = load_vlm_inputs(model_path, dtype, device)
        self.tokenizer = self.vlm.tokenizer
        self.batch_size = batch_size
        self.images = DecodedImages(image_root)
        self.yes_id = answer_token_id(self.tokenizer, "Yes")
        self.no_id = answer_token_id(self.tokenizer, "No")

    def prompt(self, query: Side, candidate: Side) -> str:
        return render_chat(self.tokenizer, query, candidate, vision=True)

    @torch.inference_mode()
    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.float32)
        prompts = [self.prompt(q, c) for q, c in zip(queries, candidates)]
        paths = [image_paths(q, c) for q, c in zip(queries, candidates)]

        def area(i: int) -> int:  # image tokens grow with the picture's size: bucket by it
            return sum(self.images.get(p).width * self.images.get(p).height for p in paths[i])

        order = sorted(range(len(prompts)), key=lambda i: (len(paths[i]), area(i), len(prompts[i])))
        logits = np.zeros((len(prompts), 2), np.float32)
        for idx in _batches(order, [len(p) for p in paths], self.batch_size):
            batch = self.vlm.encode([prompts[i] for i in idx], [[self.images.get(p) for p in paths[i]] for i in idx])
            out = self.vlm.model(**batch, logits_to_keep=1).logits[:, -1, :]
            logits[idx] = out[:, [self.yes_id, self.no_id]].float().cpu().numpy()
        return torch.sigmoid(torch.from_numpy(logits[:, 0] - logits[:, 1])).numpy()


def _batches(order: list[int], group: list[int], size: int) -> list[list[int]]:
    """`order` cut into runs of at most `size` that never mix two values of `group`."""
    batches: list[list[int]] = []
    for i in order:
        if not batches or len(batches[-1]) == size or group[batches[-1][0]] != group[i]:
            batches.append([])
        batches[-1].append(i)
    return batches


def image_paths(query: Side, candidate: Side) -> list[str]:
    """The pair's images in prompt order."""
    return [p for p in (query.image, candidate.image) if p]


def render_chat(tokenizer: Any, query: Side, candidate: Side, vision: bool) -> str:
    """The SPEC's user turn through the model's own chat template: a text model gets one string, a vision
    model the ordered parts, an image part where each image goes (the template writes its placeholder)."""
    if vision:
        content: Any = [{"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]}
                        for p in user_parts(query, candidate)]
    else:
        content = user_text(query, candidate)
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)


def require_text(queries: Sequence[Side], candidates: Sequence[Side], judge: str) -> None:
    """A judge that sees text only judges an image+text record by its text, and cannot judge an image-only
    one: that stops the stage with a clear error rather than scoring an empty side."""
    for side in (*queries, *candidates):
        if side.image and not strip_image_tokens(side.text):
            raise ValueError(f"the {judge} judge sees text only and a pair has an image-only side ({side.image}): "
                             "judge image pairs with a vision-language model")


class ChatPrompter:
    """Renders pairs with a model folder's own tokenizer and chat template, so every backend feeds the model
    the same tokens (and so gives the same score). A vision model gets the image parts in place; a text model
    judges an image+text side by its text."""

    def __init__(self, model_path: str, image_root: str = "") -> None:
        from transformers import AutoTokenizer
        from transforms.images import DecodedImages
        from transforms.vlm import is_vision_model
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.yes_id = answer_token_id(self.tokenizer, "Yes")
        self.no_id = answer_token_id(self.tokenizer, "No")
        self.vision_model = is_vision_model(model_path)
        self.images = DecodedImages(image_root)

    def check(self, queries: Sequence[Side], candidates: Sequence[Side], judge: str) -> None:
        if not self.vision_model:
            require_text(queries, candidates, judge)

    def text(self, query: Side, candidate: Side) -> str:
        return render_chat(self.tokenizer, query, candidate, self.vision_model)

    def token_ids(self, query: Side, candidate: Side) -> list[int]:
        return self.tokenizer(self.text(query, candidate), add_special_tokens=False)["input_ids"]

    def image_paths(self, query: Side, candidate: Side) -> list[str]:
        """The images the model is shown: none for a text model."""
        return image_paths(query, candidate) if self.vision_model else []


def p_yes(yes_logprob: np.ndarray, no_logprob: np.ndarray) -> np.ndarray:
    """exp(y) / (exp(y) + exp(n)); log-probabilities share the softmax normaliser, so it cancels."""
    return torch.sigmoid(torch.as_tensor(yes_logprob, dtype=torch.float64)
                         - torch.as_tensor(no_logprob, dtype=torch.float64)).float().numpy()


class VLLMJudge:
    """vLLM offline (`vllm.LLM`), one engine per worker process.

    Exactness: vLLM reports log-probabilities of the raw distribution, computed before any sampling filter,
    and always includes the sampled token's. Each pair is therefore asked twice, once with
    `allowed_token_ids=[Yes]` and once with `[No]`: the forced token is sampled and its exact raw
    log-probability returned, whatever its rank (top-k logprobs would miss an answer token outside the top k).
    The two requests of a pair, and all pairs of one query, are submitted together in query order, so the
    second and later requests reuse the cached prefix; max_tokens=1 keeps each to one forward step.

    Images (a vision model): the pair goes as the chat-template text with its placeholders plus the decoded
    images as `multi_modal_data`, in prompt order; vLLM's copy of the model's processor expands the
    placeholders. vLLM hashes image content into its prefix-cache keys, so a query's image is cached too.
    Text-only pairs go as token ids, the same ids the other backends feed.
    """

    def __init__(self, model_path: str, dtype: str, gpu_memory_utilization: float, block_size: int,
                 max_model_len: int, seed: int = 0, image_root: str = "") -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM, SamplingParams
        self.prompter = ChatPrompter(model_path, image_root)
        kwargs: dict[str, Any] = {"dtype": dtype, "enable_prefix_caching": True, "max_model_len": max_model_len,
                                  "gpu_memory_utilization": gpu_memory_utilization, "seed": seed,
                                  "disable_log_stats": False, "enforce_eager": not torch.cuda.is_available()}
        if block_size:
            kwargs["block_size"] = block_size
        if self.prompter.vision_model:
            kwargs["limit_mm_per_prompt"] = {"image": 2}  # the query's and the candidate's
        self.llm = LLM(model_path, **kwargs)
        self._force = {tok: SamplingParams(max_tokens=1, temperature=0.0, logprobs=0, allowed_token_ids=[tok])
                       for tok in (self.prompter.yes_id, self.prompter.no_id)}

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        from vllm.inputs import TextPrompt, TokensPrompt
        if not queries:
            return np.zeros(0, np.float32)
        self.prompter.check(queries, candidates, "vllm")
        yes, no = self.prompter.yes_id, self.prompter.no_id
        prompts: list[Any] = []
        params = []
        for q, c in zip(queries, candidates):
            paths = self.prompter.image_paths(q, c)
            if paths:
                prompt: Any = TextPrompt(prompt=self.prompter.text(q, c),
                                         multi_modal_data={"image": [self.prompter.images.get(p) for p in paths]})
            else:
                prompt = TokensPrompt(prompt_token_ids=self.prompter.token_ids(q, c))
            prompts += [prompt, prompt]
            params += [self._force[yes], self._force[no]]
        # The chat template is the only source of special tokens, as for the token-id prompts.
        outputs = self.llm.generate(prompts, params, use_tqdm=False,
                                    tokenization_kwargs={"add_special_tokens": False})
        logprobs = np.array([_forced_logprob(o.outputs[0], p.allowed_token_ids[0]) for o, p in zip(outputs, params)])
        return p_yes(logprobs[0::2], logprobs[1::2])

    def prefix_cache_stats(self) -> dict[str, float]:
        """The engine's own prefix-cache counters: queried and hit prompt tokens, and the hit rate."""
        values = {m.name: m.value for m in self.llm.get_metrics()
                  if m.name in ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits")}
        queries, hits = values.get("vllm:prefix_cache_queries", 0), values.get("vllm:prefix_cache_hits", 0)
        return {"prefix_cache_queried_tokens": queries, "prefix_cache_hit_tokens": hits,
                "prefix_cache_hit_rate": round(hits / queries, 4) if queries else 0.0}


def _forced_logprob(completion: Any, token: int) -> float:
    if not completion.token_ids or completion.token_ids[0] != token or not completion.logprobs:
        raise RuntimeError(f"vLLM did not return the forced answer token {token} with its log-probability")
    return completion.logprobs[0][token].logprob
