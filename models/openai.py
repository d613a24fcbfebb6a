"""The `openai` backend: any OpenAI-compatible server (`vllm serve`, and others) over HTTP.

Each request becomes one chat completion (`/chat/completions`) or, for a raw prompt, one text
completion (`/completions`); up to `max_concurrency` of them are in flight at once, so the
server can batch them. How a constraint travels depends on the server's flavor:

- `vllm`: in the body as `structured_outputs: {json | regex | choice}`, vLLM's current API.
  (Its old `guided_json`/`guided_regex`/`guided_choice` fields are no longer read: such a request
  comes back unconstrained with only a warning in the server's log, so we never send them.)
- `openai`: `response_format: {type: json_schema, ...}`, the only constraint OpenAI's API has. A
  choice becomes a JSON Schema enum (wrapped in an object, since strict mode wants an object at the
  root); a regex cannot be expressed and is refused before anything is sent.
- `auto`: asks `/models` once; a server whose models are `owned_by: vllm` is `vllm`, any other
  is `openai`.

Servers are outside our control, so every constrained text is validated here with the same
`validate_completion` the other backends use: a text that fails is `invalid` (re-asked a bounded
number of times), a text cut by max_tokens is `length` and never valid.

Transport: the standard library's urllib in a thread pool. We need a handful of JSON POSTs with
timeouts, our own retry policy and strict control over what is logged; the `openai` package
would add a dependency with its own hidden retries and no way to send vLLM's body fields other
than `extra_body`, so it buys nothing here. 429, 5xx and connection errors are retried with
exponential backoff (a server's Retry-After is honoured); when retries run out the completion
is `error` with the reason. The API key is sent only in the Authorization header and is
redacted from every message we log or return.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from imaginarium import secrets
from imaginarium.models.backend import Backend, Completion, Constraint, GenerationRequest
from imaginarium.models.constraint_check import judged_completion

logger = logging.getLogger(__name__)

FLAVORS = ("vllm", "openai", "auto")
# The property a choice or a regex is wrapped in for OpenAI-style json_schema outputs.
_WRAPPED = {"choice": "choice", "regex": "text"}
_MAX_BACKOFF_S = 30.0
_ERROR_BODY_CHARS = 300


class _Retryable(Exception):
    """A failure worth another try (429, 5xx, connection trouble)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RequestFailed(Exception):
    """A request that failed for good: retries exhausted or a non-retryable answer."""


class OpenAIBackend(Backend):
    """Generate through an OpenAI-compatible HTTP server.

    `base_url` is the API root including `/v1`, as for the OpenAI client
    (`http://127.0.0.1:8000/v1`). `api_key` defaults to $OPENAI_API_KEY; with neither, no
    Authorization header is sent (a local `vllm serve` needs none). `revision` is only recorded:
    the server decides which weights it serves.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        flavor: str = "auto",
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        invalid_retries: int = 1,
        revision: str | None = None,
    ):
        super().__init__(model, revision)
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {', '.join(FLAVORS)}, not {flavor!r}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.requested_flavor = flavor
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.invalid_retries = invalid_retries
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        secrets.register(self._api_key)
        self._flavor = None if flavor == "auto" else flavor

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, flavor={self.requested_flavor!r})"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url, "flavor": self._flavor or self.requested_flavor}

    # ----------------------------------------------------------------- flavor

    @property
    def flavor(self) -> str:
        """`vllm` or `openai`; with `auto`, decided on first use from the server's /models."""
        if self._flavor is None:
            models = self._request("GET", "/models")
            owners = {entry.get("owned_by") for entry in models.get("data", []) if isinstance(entry, dict)}
            self._flavor = "vllm" if "vllm" in owners else "openai"
            logger.info("%s: server flavor detected as %s", self.base_url, self._flavor)
        return self._flavor

    # ---------------------------------------------------------- request body

    def build_body(self, request: GenerationRequest, flavor: str) -> dict[str, Any]:
        """The JSON body for `request` on a server of `flavor` (`vllm` or `openai`).

        Tools go to the chat template with `tool_choice: none`: the model sees them, and the
        call itself is generated as constrained content (servers refuse `auto` tool choice
        unless started with a tool parser).
        """
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": request.n,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.messages is not None:
            body["messages"] = request.messages
            if request.tools:
                body["tools"] = request.tools
                body["tool_choice"] = "none"
        else:
            body["prompt"] = request.prompt
        if request.constraint is not None:
            body.update(_constraint_fields(request.constraint, flavor, chat=request.messages is not None))
        return body

    # ------------------------------------------------------------- generate

    def _generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        try:
            flavor = self.flavor
        except RequestFailed as exc:
            message = f"could not ask the server for its flavor: {exc}"
            return [_error(index, sample, message) for index, r in enumerate(requests) for sample in range(r.n)]
        bodies: list[dict[str, Any] | str] = []
        for request in requests:
            try:
                bodies.append(self.build_body(request, flavor))
            except ValueError as exc:  # this server cannot serve this request: its completions fail
                bodies.append(str(exc))
        workers = min(self.max_concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-backend") as pool:
            per_request = list(pool.map(self._complete, range(len(requests)), requests, bodies))
        return [completion for completions in per_request for completion in completions]

    def _complete(self, index: int, request: GenerationRequest, body: dict[str, Any] | str) -> list[Completion]:
        """All `n` completions of one request; invalid ones are asked again a bounded number of times."""
        if isinstance(body, str):  # the request could not be put to this server
            return [_error(index, sample, body) for sample in range(request.n)]
        completions = self._send(index, request, body)
        for attempt in range(1, self.invalid_retries + 1):
            bad = [i for i, completion in enumerate(completions) if completion.finish_reason == "invalid"]
            if not bad:
                break
            retry_body = {**body, "n": len(bad)}
            if "seed" in body:  # the same seed would give the same invalid text
                retry_body["seed"] = body["seed"] + attempt
            logger.info("request %d: %d invalid output(s), asking again (%d/%d)", index, len(bad), attempt, self.invalid_retries)
            for sample, completion in zip(bad, self._send(index, request, retry_body)):
                if completion.finish_reason != "error":
                    completions[sample] = replace(completion, sample_index=sample)
        return completions

    def _send(self, index: int, request: GenerationRequest, body: dict[str, Any]) -> list[Completion]:
        chat = request.messages is not None
        try:
            payload = self._request("POST", "/chat/completions" if chat else "/completions", body)
        except RequestFailed as exc:
            return [_error(index, sample, str(exc)) for sample in range(body["n"])]
        choices = sorted(payload.get("choices") or [], key=lambda choice: choice.get("index", 0))
        if len(choices) != body["n"]:
            message = f"the server returned {len(choices)} choices for n={body['n']}"
            return [_error(index, sample, message) for sample in range(body["n"])]
        usage = payload.get("usage") or {}
        per_sample, remainder = divmod(int(usage.get("completion_tokens") or 0), len(choices))
        completions = []
        for sample, choice in enumerate(choices):
            text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
            completion = self._judge(request.constraint, text or "", choice.get("finish_reason"))
            # usage is per response: the prompt is counted once, completion tokens shared out
            completion.prompt_tokens = int(usage.get("prompt_tokens") or 0) if sample == 0 else 0
            completion.completion_tokens = per_sample + (remainder if sample == 0 else 0)
            completion.request_index = index
            completion.sample_index = sample
            completions.append(completion)
        return completions

    def _judge(self, constraint: Constraint | None, text: str, server_reason: str | None) -> Completion:
        """Map the server's finish_reason and validate the text (a choice unwrapped first)."""
        if constraint is not None and constraint.kind in _WRAPPED and self._flavor == "openai":
            text = _unwrap(text, _WRAPPED[constraint.kind])
        return judged_completion(constraint, text, server_reason)

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request with retries; the parsed JSON answer, or RequestFailed."""
        url = self.base_url + path
        last: _Retryable | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return self._request_once(method, url, body)
            except _Retryable as exc:
                last = exc
                if attempt == self.max_retries:
                    break
                delay = exc.retry_after if exc.retry_after is not None else self.backoff * 2**attempt
                delay = min(delay, _MAX_BACKOFF_S)
                logger.warning("%s %s: %s; retry %d/%d in %.1fs", method, url, exc, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        raise RequestFailed(self._redact(f"{method} {url} failed after {self.max_retries + 1} attempts: {last}"))

    def _request_once(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http_request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = self._redact(f"HTTP {exc.code}: {_error_message(exc.read())}")
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(message, _retry_after(exc.headers.get("Retry-After"))) from None
            raise RequestFailed(f"{method} {url}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
            reason = getattr(exc, "reason", exc)
            raise _Retryable(self._redact(f"connection failed: {reason}")) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise RequestFailed(self._redact(f"{method} {url}: the answer is not JSON: {raw[:_ERROR_BODY_CHARS]!r}")
                                ) from None

    def _redact(self, text: str) -> str:
        """Remove the API key (in every form, imaginarium/secrets.py) from a message, should a
        server have echoed it."""
        secrets.register(self._api_key)
        return secrets.redact(text)


def _constraint_fields(constraint: Constraint, flavor: str, chat: bool) -> dict[str, Any]:
    """The body fields that carry `constraint` on a server of `flavor`."""
    if flavor == "vllm":
        return {"structured_outputs": {constraint.kind: constraint.value}}
    if not chat:
        raise ValueError("OpenAI's /completions endpoint has no structured output: use chat messages or a vLLM server")
    if constraint.kind in _WRAPPED:
        # OpenAI-style servers constrain to JSON Schemas whose root is an object: a choice or a
        # regex is asked as a one-field object ({"choice": enum} / {"text": pattern}) and
        # unwrapped from the answer before it is checked against the original constraint.
        field = _WRAPPED[constraint.kind]
        value = ({"type": "string", "enum": list(constraint.value)} if constraint.kind == "choice"
                 else {"type": "string", "pattern": f"^(?:{constraint.value})$"})
        schema = {"type": "object", "properties": {field: value}, "required": [field], "additionalProperties": False}
    else:
        schema = constraint.value
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}}


def _unwrap(text: str, field: str) -> str:
    """`{"choice": "yes"}` -> `yes` (for `field` "choice"); anything else is returned unchanged
    (and will not validate)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict) and isinstance(value.get(field), str):
        return value[field]
    return text


def _error(index: int, sample: int, message: str) -> Completion:
    return Completion("", "error", request_index=index, sample_index=sample, error=message)


def _error_message(raw: bytes) -> str:
    """The `error.message` of an OpenAI-style error body, else the body's start."""
    text = raw.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:_ERROR_BODY_CHARS]
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:_ERROR_BODY_CHARS]
        if isinstance(error, str):
            return error[:_ERROR_BODY_CHARS]
    return text[:_ERROR_BODY_CHARS]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
