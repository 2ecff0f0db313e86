"""The `openai` judge backend: a running OpenAI-compatible server (`vllm serve`), with exact Yes/No scores.

Text pairs go to /v1/completions as token ids rendered by the model folder's own chat template (the same
tokens the other backends feed). Pairs with images go to /v1/chat/completions as the prompt's parts in order,
each image the decoded RGB pixels the other backends see, sent as a lossless PNG data URL; the server renders
them with the same chat template. Both carry vLLM's `allowed_token_ids` extension, one request per answer
token: the forced token comes back with its exact raw log-probability (vllm.py says why). Concurrency is
bounded; 5xx answers, connection errors and timeouts are retried with exponential backoff; anything else is a
clear error.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from judgemine.transforms.common.options import above, at_least, setting
from judgemine.transforms.common.sides import Side
from judgemine.transforms.judge.backends.vllm import PREFIX_CACHE_COUNTERS
from judgemine.transforms.judge.base import Capabilities, JudgeBackend, JudgeModel
from judgemine.transforms.judge.chat import ChatPrompter
from judgemine.transforms.judge.prompt import user_parts
from judgemine.transforms.judge.scoring import JudgeAnswerError, forced_logprob, p_yes

log = logging.getLogger(__name__)
PROGRESS_S = 30.0
# vLLM's 400 answers for a prompt over the served context length.
TOO_LONG = re.compile(r"maximum context length|longer than the maximum model length|max_model_len", re.I)


class JudgeServerError(JudgeAnswerError):
    """The server cannot give what an exact score needs, or kept failing."""


def _answer_logprob(payload: dict[str, Any], token: int) -> float:
    try:
        logprobs = payload["choices"][0]["logprobs"]
        if "content" in logprobs:  # chat completions
            returned, value = logprobs["content"][0]["token"], logprobs["content"][0]["logprob"]
        else:
            returned, value = logprobs["tokens"][0], logprobs["token_logprobs"][0]
    except (KeyError, IndexError, TypeError) as e:
        raise JudgeServerError("the server returned no log-probabilities for the answer token; exact scores "
                               "need the `logprobs` field") from e
    prefix = "token_id:"  # what `return_tokens_as_token_ids` makes of a token
    returned_id = int(returned[len(prefix):]) if str(returned).startswith(prefix) else None
    return forced_logprob(returned_id, value, token, f"the server ({returned!r})", JudgeServerError)


@dataclass(frozen=True)
class ServerOptions:
    judge_server_url: str = setting("", (), "base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000")
    judge_server_model: str = setting("", ("judge",), "model name the server serves; empty = --judge-model")
    judge_concurrency: int = setting(32, (), "requests in flight to the judge server", range=above(0))
    judge_timeout: float = setting(60.0, (), "seconds before a judge server request is retried", range=above(0))
    judge_retries: int = setting(4, (), "retries of a judge server request on 5xx, connection errors, timeouts",
                                 range=at_least(0))
    judge_api_key_env: str = setting("OPENAI_API_KEY", (), "the environment variable holding the judge server's "
                                     "API key, sent as a bearer token when set (never written anywhere)")
    judge_deadline: float = setting(1800.0, (), "seconds all requests of one chunk may take; then the stage stops, "
                                    "saying how many are unanswered", range=above(0))


def auth_headers(options: ServerOptions) -> dict[str, str]:
    """The bearer token from the environment variable the options name (`vllm serve --api-key`, a hosted
    endpoint); none when it is unset. Read where each request is made, so no record, lease or log holds it."""
    key = os.environ.get(options.judge_api_key_env, "") if options.judge_api_key_env else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


class OpenAIServerJudge(JudgeBackend):
    name = "openai"
    capabilities = Capabilities(images=True, reports=PREFIX_CACHE_COUNTERS)
    Options = ServerOptions
    backoff_s = 0.5  # first retry delay; doubles each attempt

    @classmethod
    def check_options(cls, options: ServerOptions) -> None:
        if not options.judge_server_url:
            raise ValueError("--judge-backend openai needs --judge-server-url URL")

    @classmethod
    def identity(cls, model: JudgeModel, options: ServerOptions) -> str:
        """The scores are the server's: its base URL's model as `/v1/models` describes it (id, root, parent,
        context length, owner), with the local folder whose chat template renders the prompts. Another model
        served under the same name is another judge."""
        served = options.judge_server_model or model.path
        url = options.judge_server_url.rstrip("/") + "/v1/models"
        try:
            response = httpx.get(url, timeout=options.judge_timeout, headers=auth_headers(options))
        except httpx.TransportError as e:
            raise JudgeServerError(f"cannot reach the judge server at {url} ({type(e).__name__})") from None
        if response.status_code != 200:
            raise JudgeServerError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            entries = {m["id"]: m for m in response.json()["data"]}
        except (KeyError, TypeError, ValueError) as e:
            raise JudgeServerError(f"{url} did not list its models ({e})") from None
        if served not in entries:
            raise JudgeServerError(f"the judge server at {options.judge_server_url} does not serve {served!r} (it "
                                   f"serves {', '.join(sorted(entries)) or 'nothing'}): set --judge-server-model")
        about = {k: entries[served].get(k) for k in ("id", "root", "parent", "max_model_len", "owned_by")}
        folder = super().identity(model, options)
        payload = json.dumps({"server_model": about, "template_folder": folder}, sort_keys=True)
        return "server-" + hashlib.sha256(payload.encode()).hexdigest()[:20]

    def __init__(self, model: JudgeModel, options: ServerOptions) -> None:
        if not options.judge_server_url:
            raise ValueError("--judge-backend openai needs --judge-server-url")
        self.prompter = ChatPrompter.for_model(model)
        self.base_url = options.judge_server_url.rstrip("/")
        self.served_model = options.judge_server_model or model.path
        self.concurrency, self.timeout_s = options.judge_concurrency, options.judge_timeout
        self.retries, self.deadline_s = options.judge_retries, options.judge_deadline
        self.headers = auth_headers(options)
        self.retried = 0
        self._answered = 0
        self._reachable()

    def _reachable(self) -> None:
        """Fails at once, with the address, when nothing listens there (rather than after every retry)."""
        try:
            httpx.get(f"{self.base_url}/v1/models", timeout=self.timeout_s, headers=self.headers)
        except httpx.ConnectError as e:
            raise JudgeServerError(f"cannot reach the judge server at {self.base_url} ({e})") from None
        except httpx.TransportError:
            pass  # it listens: slowness is bounded by the per-chunk deadline

    def score(self, queries: Sequence[Side], candidates: Sequence[Side]) -> np.ndarray:
        if not queries:
            return np.zeros(0, np.float32)
        self.prompter.check(queries, candidates, "openai")
        urls: dict[str, str] = {}  # a chunk holds a query's K+1 pairs: its image is encoded once, not K+1 times
        requests = [self._request(q, c, urls) for q, c in zip(queries, candidates)]
        logprobs = np.array(asyncio.run(self._within_deadline(requests)))
        return p_yes(logprobs[0::2], logprobs[1::2])

    async def _within_deadline(self, requests: list[tuple[str, dict[str, Any]]]) -> list[float]:
        """All of a chunk's requests within --judge-deadline, with a progress line every PROGRESS_S seconds."""
        total, self._answered = 2 * len(requests), 0
        work = asyncio.ensure_future(self._all(requests))
        started = time.monotonic()
        while True:
            left = self.deadline_s - (time.monotonic() - started)
            done, _ = await asyncio.wait({work}, timeout=max(0.0, min(PROGRESS_S, left)))
            if done:
                return work.result()
            if left <= PROGRESS_S:
                work.cancel()
                raise JudgeServerError(f"{self.base_url}: {total - self._answered} of {total} requests of this chunk "
                                       f"unanswered after {self.deadline_s:g} s (--judge-deadline)")
            log.info("judge: server: %d of %d requests answered, %.0f s left before the deadline",
                     self._answered, total, left - PROGRESS_S)

    def _request(self, query: Side, candidate: Side, urls: dict[str, str]) -> tuple[str, dict[str, Any]]:
        """(endpoint, body without the answer token) for one pair."""
        common = {"model": self.served_model, "max_tokens": 1, "temperature": 0.0, "return_tokens_as_token_ids": True}
        if not self.prompter.image_paths(query, candidate):
            return "/v1/completions", {**common, "prompt": self.prompter.token_ids(query, candidate), "logprobs": 1}
        content: list[dict[str, Any]] = []
        for part in user_parts(query, candidate):
            if part["type"] == "image":
                if part["image"] not in urls:
                    urls[part["image"]] = self._data_url(part["image"])
                content.append({"type": "image_url", "image_url": {"url": urls[part["image"]]}})
            elif content and content[-1]["type"] == "text":  # one text part between images, as the template sees
                content[-1]["text"] += part["text"]
            else:
                content.append({"type": "text", "text": part["text"]})
        return "/v1/chat/completions", {**common, "messages": [{"role": "user", "content": content}],
                                        "logprobs": True, "add_generation_prompt": True}

    def _data_url(self, path: str) -> str:
        buffer = io.BytesIO()
        self.prompter.images.get(path).save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    def counters(self) -> dict[str, float]:
        """The server's own prefix-cache counters from /metrics (vLLM); empty when it exposes none."""
        try:
            response = httpx.get(f"{self.base_url}/metrics", timeout=self.timeout_s, headers=self.headers)
        except httpx.TransportError:
            return {}
        return parse_prefix_cache_metrics(response.text) if response.status_code == 200 else {}

    async def _all(self, requests: list[tuple[str, dict[str, Any]]]) -> list[float]:
        limit = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s, limits=limits,
                                     headers=self.headers) as client:
            tokens = (self.prompter.yes_id, self.prompter.no_id)
            return await asyncio.gather(*(self._one(client, limit, endpoint, {**body, "allowed_token_ids": [tok]},
                                                    tok) for endpoint, body in requests for tok in tokens))

    async def _one(self, client: httpx.AsyncClient, limit: asyncio.Semaphore, endpoint: str, body: dict[str, Any],
                   token: int) -> float:
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            async with limit:
                try:
                    response = await client.post(endpoint, json=body)
                except httpx.TransportError as e:  # connection refused/reset, timeouts
                    error = e
                    continue
            if response.status_code >= 500:
                error = JudgeServerError(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            if response.status_code == 400 and TOO_LONG.search(response.text):
                self._answered += 1
                return float("nan")  # the prompt does not fit the served context: refused, counted by the stage
            if response.status_code >= 400:
                raise JudgeServerError(f"{self.base_url} rejected the request (HTTP {response.status_code}): "
                                       f"{response.text[:300]}")
            self._answered += 1
            return _answer_logprob(response.json(), token)
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
