"""The judge behind an OpenAI-compatible completions server (`vllm serve`), with exact Yes/No scores.

Requests carry the prompt as token ids rendered by the model folder's own chat template (the same tokens the
other backends feed) and vLLM's `allowed_token_ids` extension, one request per answer token: the forced token
comes back with its exact raw log-probability (see VLLMJudge for why). Concurrency is bounded; 5xx answers,
connection errors and timeouts are retried with exponential backoff; anything else is a clear error.
"""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

import httpx
import numpy as np

from transforms.judge_backends import ChatPrompter, p_yes, require_text
from transforms.judge_prompt import Side


class JudgeServerError(RuntimeError):
    """The server cannot give what an exact score needs, or kept failing."""


def _forced_logprob(payload: dict[str, Any], token: int) -> float:
    try:
        logprobs = payload["choices"][0]["logprobs"]
        returned, value = logprobs["tokens"][0], logprobs["token_logprobs"][0]
    except (KeyError, IndexError, TypeError) as e:
        raise JudgeServerError("the server returned no log-probabilities for the answer token; exact scores "
                               "need the completions `logprobs` field") from e
    if returned != f"token_id:{token}":
        raise JudgeServerError(f"the server answered {returned!r} instead of the forced token {token}: it must "
                               "honour vLLM's `allowed_token_ids` and `return_tokens_as_token_ids`")
    return float(value)


class OpenAIServerJudge:
    def __init__(self, base_url: str, served_model: str, model_path: str, concurrency: int = 32,
                 timeout_s: float = 60.0, retries: int = 4, backoff_s: float = 0.5) -> None:
        self.prompter = ChatPrompter(model_path)
        self.base_url = base_url.rstrip("/")
        self.served_model = served_model
        self.concurrency, self.timeout_s, self.retries, self.backoff_s = concurrency, timeout_s, retries, backoff_s
        self.retried = 0

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.float32)
        require_text(queries, candidates, "openai", self.prompter.vision_model)
        prompts = [self.prompter.token_ids(q, c) for q, c in zip(queries, candidates)]
        logprobs = np.array(asyncio.run(self._all(prompts)))
        return p_yes(logprobs[0::2], logprobs[1::2])

    def prefix_cache_stats(self) -> dict[str, float]:
        """The server's own prefix-cache counters from /metrics (vLLM); empty when it exposes none."""
        try:
            response = httpx.get(f"{self.base_url}/metrics", timeout=self.timeout_s)
        except httpx.TransportError:
            return {}
        return parse_prefix_cache_metrics(response.text) if response.status_code == 200 else {}

    async def _all(self, prompts: list[list[int]]) -> list[float]:
        limit = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s, limits=limits) as client:
            tokens = (self.prompter.yes_id, self.prompter.no_id)
            return await asyncio.gather(*(self._one(client, limit, ids, tok) for ids in prompts for tok in tokens))

    async def _one(self, client: httpx.AsyncClient, limit: asyncio.Semaphore, ids: list[int], token: int) -> float:
        body = {"model": self.served_model, "prompt": ids, "max_tokens": 1, "temperature": 0.0, "logprobs": 1,
                "allowed_token_ids": [token], "return_tokens_as_token_ids": True}
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            async with limit:
                try:
                    response = await client.post("/v1/completions", json=body)
                except httpx.TransportError as e:  # connection refused/reset, timeouts
                    error = e
                    continue
            if response.status_code >= 500:
                error = JudgeServerError(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            if response.status_code >= 400:
                raise JudgeServerError(f"{self.base_url} rejected the request (HTTP {response.status_code}): "
                                       f"{response.text[:300]}")
            return _forced_logprob(response.json(), token)
        raise JudgeServerError(f"{self.base_url}: gave up after {self.retries + 1} attempts: {error!r}")


def parse_prefix_cache_metrics(text: str) -> dict[str, float]:
    """vLLM's Prometheus counters for prefix-cache queried and hit tokens, summed over label sets."""
    totals = {"vllm:prefix_cache_queries_total": 0.0, "vllm:prefix_cache_hits_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return {"prefix_cache_queried_tokens": totals["vllm:prefix_cache_queries_total"],
            "prefix_cache_hit_tokens": totals["vllm:prefix_cache_hits_total"]}
