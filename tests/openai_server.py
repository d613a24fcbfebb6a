"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests, serving any `Backend`.

It speaks the subset of the API that `OpenAIBackend` sends: `GET /v1/models`,
`POST /v1/chat/completions` and `POST /v1/completions`, with constraints given either vLLM's
way (`structured_outputs: {json | regex | choice}`) or OpenAI's (`response_format:
{type: json_schema}`), and answers OpenAI-shaped JSON with `usage` and `finish_reason`. Like a
real server it does not validate the model's output: an `invalid` completion is returned as a
normal `stop` answer, and the client has to notice.

Requests that arrive together are gathered into one `generate` call (a short batching window),
so concurrent clients get the backend's batching, as they would from `vllm serve`.

For tests of the client's failure handling it can answer `fail_status` to the first
`fail_first` requests, require an API key, and it records every request (method, path,
headers, body) in `requests`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from imaginarium.models.backend import Backend, Completion, Constraint, GenerationRequest


class BadRequest(Exception):
    """The request body is not something this server understands (answered with 400)."""


@dataclass
class _Job:
    requests: list[GenerationRequest]
    done: threading.Event = field(default_factory=threading.Event)
    completions: list[Completion] | None = None
    error: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 resets connections when clients send 64 at once


class OpenAITestServer:
    """Serve `backend` as model `model_name` on a free port of 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        backend: Backend,
        model_name: str = "tiny",
        owned_by: str = "imaginarium-tests",
        api_key: str | None = None,
        fail_first: int = 0,
        fail_status: int = 500,
        batch_window_s: float = 0.05,
        max_batch: int = 64,
    ):
        self.backend = backend
        self.model_name = model_name
        self.owned_by = owned_by
        self.api_key = api_key
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.batch_window_s = batch_window_s
        self.max_batch = max_batch
        self.requests: list[dict[str, Any]] = []
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="openai-test-http", daemon=True),
            threading.Thread(target=self._batch_loop, name="openai-test-batcher", daemon=True),
        ]

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAITestServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------- batching

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        """Queue `requests` for the next batch and wait for their completions."""
        job = _Job(requests)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise RuntimeError(job.error)
        return job.completions

    def _batch_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                jobs = [self._jobs.get(timeout=0.1)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + self.batch_window_s
            size = len(jobs[0].requests)
            while size < self.max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    jobs.append(self._jobs.get(timeout=left))
                except queue.Empty:
                    break
                size += len(jobs[-1].requests)
            self._run_batch(jobs)

    def _run_batch(self, jobs: list[_Job]) -> None:
        batch = [request for job in jobs for request in job.requests]
        self.batch_sizes.append(len(batch))
        try:
            completions = self.backend.generate(batch)
        except Exception as exc:  # reported to every waiting client as a 500
            for job in jobs:
                job.error = f"{type(exc).__name__}: {exc}"
                job.done.set()
            return
        # completions are flat in request order, n per request: hand each job its slice
        by_request: dict[int, list[Completion]] = {}
        for completion in completions:
            by_request.setdefault(completion.request_index, []).append(completion)
        offset = 0
        for job in jobs:
            job.completions = [c for i in range(len(job.requests)) for c in by_request.get(offset + i, [])]
            offset += len(job.requests)
            job.done.set()

    # ---------------------------------------------------------------- HTTP

    def _admit(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, str] | None:
        """Record the request; an (status, message) to answer instead of serving it, or None."""
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            failing = len(self.requests) <= self.fail_first
        if failing:
            return self.fail_status, f"injected failure {len(self.requests)} of {self.fail_first}"
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, "missing or wrong API key"
        return None

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": self.owned_by}]}

    def complete(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        request = to_generation_request(body, chat)
        completions = self.generate([request])
        errors = [c.error or "error" for c in completions if c.finish_reason == "error"]
        if errors:
            raise RuntimeError(errors[0])
        choices = []
        for completion in completions:
            reason = "length" if completion.finish_reason == "length" else "stop"
            choice = {"message": {"role": "assistant", "content": completion.text}} if chat else {"text": completion.text}
            choices.append({"index": completion.sample_index, **choice, "finish_reason": reason})
        prompt_tokens = completions[0].prompt_tokens if completions else 0
        completion_tokens = sum(c.completion_tokens for c in completions)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def to_generation_request(body: dict[str, Any], chat: bool) -> GenerationRequest:
    """The GenerationRequest an OpenAI-style body asks for (BadRequest when malformed)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    stop = body.get("stop")
    fields = {
        "constraint": _constraint(body),
        "max_tokens": int(body.get("max_tokens") or body.get("max_completion_tokens") or 16),
        "temperature": float(body.get("temperature", 1.0)),
        "top_p": float(body.get("top_p", 1.0)),
        "stop": [stop] if isinstance(stop, str) else stop or None,
        "seed": body.get("seed"),
        "n": int(body.get("n", 1)),
    }
    try:
        if chat:
            return GenerationRequest(messages=body["messages"], tools=body.get("tools"), **fields)
        return GenerationRequest(prompt=body["prompt"], **fields)
    except (KeyError, ValueError) as exc:
        raise BadRequest(f"bad request: {exc}") from None


def _constraint(body: dict[str, Any]) -> Constraint | None:
    structured = body.get("structured_outputs")
    if structured:
        given = {kind: structured[kind] for kind in ("json", "regex", "choice") if structured.get(kind) is not None}
        if len(given) != 1:
            raise BadRequest("structured_outputs needs exactly one of json, regex and choice")
        (kind, value), = given.items()
        if kind == "json" and isinstance(value, str):
            value = json.loads(value)
        return Constraint(kind, value)
    response_format = body.get("response_format")
    if response_format:
        if response_format.get("type") != "json_schema":
            raise BadRequest(f"response_format type {response_format.get('type')!r} is not supported here")
        return Constraint.json(response_format["json_schema"]["schema"])
    return None


def _handler_for(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: a test server's access log is noise."""

        def do_GET(self) -> None:
            refusal = server._admit("GET", self.path, dict(self.headers), None)
            if refusal:
                self._error(*refusal)
            elif self.path.rstrip("/") == "/v1/models":
                self._json(200, server.models())
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                self._error(400, "the body is not JSON")
                return
            refusal = server._admit("POST", self.path, dict(self.headers), body)
            if refusal:
                self._error(*refusal)
                return
            routes = {"/v1/chat/completions": True, "/v1/completions": False}
            if self.path not in routes:
                self._error(404, f"no route {self.path}")
                return
            try:
                self._json(200, server.complete(body, chat=routes[self.path]))
            except BadRequest as exc:
                self._error(400, str(exc))
            except Exception as exc:
                self._error(500, f"{type(exc).__name__}: {exc}")

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": {"message": message, "type": "test_server_error", "code": status}})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
