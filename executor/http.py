"""The live executor for HTTP tools (ToolSpec.http, from OpenAPI): one call -> one `Response`.

Every failure becomes a Response with status "error" and an `error_kind`, never an exception:
`http_status` (4xx/5xx after retries), `timeout`, `connection_error`. Why these rules:

- *Retries with backoff* on 429 and 5xx (honouring a short Retry-After) and on refused
  connections: public APIs fail transiently all the time, and a retry is cheaper than a lost trial.
  A timeout is not retried: it has already cost the full timeout.
- *A size cap.* At most `max_bytes` of the body are kept; the rest is counted (up to a limit)
  so the observation can say how much was cut.
- *API keys* come from environment variables at call time (`ApiKey`), are sent as a header or a
  query parameter, and are scrubbed from anything returned (a server may echo them): the cache
  and the observations never contain them. Error messages name the URL without its query.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal

from imaginarium.errors import InputError
from imaginarium.executor.observation import Response, text_of
from imaginarium.schemas.toolspec import ToolSpec

RETRY_STATUSES = {429, 500, 502, 503, 504}
REDACTED = "[REDACTED]"
_COUNT_LIMIT_FACTOR = 64  # count at most this many times max_bytes past the cap


@dataclass(frozen=True)
class ApiKey:
    """An API key read from the environment variable `env`, sent as a header or query parameter
    to the tools whose name matches `tools` (a glob)."""

    env: str
    location: Literal["header", "query"]
    name: str
    tools: str = "*"

    @classmethod
    def parse(cls, text: str) -> ApiKey:
        """Parse `[TOOL_GLOB@]header:NAME=ENV` or `[TOOL_GLOB@]query:NAME=ENV`."""
        tools, _, rest = text.rpartition("@")
        location, _, assignment = rest.partition(":")
        name, _, env = assignment.partition("=")
        if location not in ("header", "query") or not name or not env:
            raise InputError(f"bad API key spec {text!r}: expected [TOOL_GLOB@]header:NAME=ENV_VAR "
                             "or [TOOL_GLOB@]query:NAME=ENV_VAR")
        return cls(env=env, location="header" if location == "header" else "query", name=name, tools=tools or "*")


@dataclass
class HttpExecutor:
    """Calls HTTP tools live. `server_url` overrides every tool's server (e.g. a local mock)."""

    timeout_s: float = 10.0
    retries: int = 2
    backoff_s: float = 0.5
    max_retry_after_s: float = 10.0
    max_bytes: int = 1 << 20
    api_keys: tuple[ApiKey, ...] = ()
    server_url: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Response:
        if tool.http is None:
            raise ValueError(f"tool {tool.name!r} has no HTTP binding")
        secrets = self._secrets(tool)
        request, shown_url = self._request(tool, arguments, secrets)
        response = self._send_with_retries(request, shown_url)
        return _scrub(response, [value for _key, value in secrets])

    # -- building the request --------------------------------------------------------------
    def _secrets(self, tool: ToolSpec) -> list[tuple[ApiKey, str]]:
        found = []
        for key in self.api_keys:
            if fnmatch.fnmatchcase(tool.name, key.tools):
                value = self.environ.get(key.env)
                if value:
                    found.append((key, value))
        return found

    def _request(
        self, tool: ToolSpec, arguments: dict[str, Any], secrets: list[tuple[ApiKey, str]]
    ) -> tuple[urllib.request.Request, str]:
        binding = tool.http
        assert binding is not None  # call() checked it
        path = binding.path
        query: list[tuple[str, str]] = []
        headers: dict[str, str] = {"Accept": "application/json, */*;q=0.5", "User-Agent": "imaginarium-executor"}
        cookies: list[str] = []
        body: Any = None
        for name, value in arguments.items():
            location, original = binding.locations.get(name, ("query" if binding.method in ("get", "delete", "head")
                                                               else "body", name))
            if location == "path":
                path = path.replace("{" + original + "}", urllib.parse.quote(_scalar(value), safe=""))
            elif location == "query":
                values = value if isinstance(value, list) else [value]
                query.extend((original, _scalar(v)) for v in values)
            elif location == "header":
                headers[original] = _scalar(value)
            elif location == "cookie":
                cookies.append(f"{original}={urllib.parse.quote(_scalar(value))}")
            elif original == "":
                body = value
            else:
                body = {} if body is None else body
                body[original] = value
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        shown_query = urllib.parse.urlencode(query)
        for key, value in secrets:
            if key.location == "header":
                headers[key.name] = value
            else:
                query.append((key.name, value))
        base = (self.server_url or binding.server_url).rstrip("/")
        shown_url = base + path + (f"?{shown_query}" if shown_query else "")
        url = base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None
        if body is not None:
            content_type = binding.content_type or "application/json"
            if content_type == "application/x-www-form-urlencoded" and isinstance(body, dict):
                data = urllib.parse.urlencode({k: _scalar(v) for k, v in body.items()}).encode()
            else:
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
                content_type = "application/json"
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=data, headers=headers, method=binding.method.upper())
        return request, shown_url

    # -- sending ---------------------------------------------------------------------------
    def _send_with_retries(self, request: urllib.request.Request, shown_url: str) -> Response:
        attempt = 0
        while True:
            response, retry_after = self._send(request, shown_url)
            retryable = retry_after is not None
            if not retryable or attempt >= self.retries:
                return response
            delay = self.backoff_s * (2**attempt)
            if retry_after is not None and retry_after > 0:
                delay = max(delay, min(retry_after, self.max_retry_after_s))
            time.sleep(delay)
            attempt += 1

    def _send(self, request: urllib.request.Request, shown_url: str) -> tuple[Response, float | None]:
        """One attempt: (response, seconds to wait before a retry or None if not retryable)."""
        deadline = time.monotonic() + self.timeout_s
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}) if _is_local(request.full_url) else
                                             urllib.request.ProxyHandler())
        method = request.get_method()
        try:
            try:
                with opener.open(request, timeout=self.timeout_s) as reply:
                    return self._read(reply, reply.status, reply.reason, deadline), None
            except urllib.error.HTTPError as exc:
                with exc:
                    response = self._read(exc, exc.code, exc.reason, deadline)
                retry_after = _retry_after(exc.headers) if exc.code in RETRY_STATUSES else None
                return response, retry_after
        except TimeoutError:
            return _failure("timeout", f"no response from {method} {shown_url} within {self.timeout_s:g} s"), None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                return _failure("timeout", f"no response from {method} {shown_url} within {self.timeout_s:g} s"), None
            retry = 0.0 if isinstance(exc.reason, ConnectionRefusedError) else None
            return _failure("connection_error", f"cannot connect for {method} {shown_url}: {exc.reason}"), retry
        except (OSError, http.client.HTTPException) as exc:  # a reset, or a malformed reply
            return _failure("connection_error", f"connection failed for {method} {shown_url}: {exc}"), None

    def _read(self, reply, status: int, reason: str, deadline: float) -> Response:
        """Read at most max_bytes of the body (then count the rest), within the deadline."""
        chunks: list[bytes] = []
        kept = 0
        total = 0
        limit = self.max_bytes * _COUNT_LIMIT_FACTOR
        while total <= limit:
            if time.monotonic() > deadline:
                raise TimeoutError
            chunk = reply.read(1 << 16)
            if not chunk:
                break
            total += len(chunk)
            if kept <= self.max_bytes:
                chunks.append(chunk)
                kept += len(chunk)
        data = b"".join(chunks)
        over_cap = total > self.max_bytes
        data = data[: self.max_bytes]
        header_length = reply.headers.get("Content-Length")
        if over_cap and header_length and header_length.isdigit():
            total = max(total, int(header_length))
        content_type = reply.headers.get_content_type() if reply.headers.get("Content-Type") else None
        text, content_type = text_of(_decode(data, reply.headers), content_type)
        if status >= 400:
            text = f"HTTP {status} {reason}\n{text}".rstrip()
            return Response(text=text, status="error", error_kind="http_status", content_type=content_type,
                            total_chars=total if over_cap else None)
        return Response(text=text, content_type=content_type, total_chars=total if over_cap else None)


def _decode(data: bytes, headers: Message) -> str | bytes:
    """Text in the declared charset when it decodes; the raw bytes (described later) otherwise."""
    charset = headers.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset)
    except (UnicodeDecodeError, LookupError):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
    return data if "\x00" in text else text


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _retry_after(headers: Message) -> float:
    value = headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _failure(kind: str, message: str) -> Response:
    return Response(text=message, status="error", error_kind=kind)


def _scrub(response: Response, secrets: list[str]) -> Response:
    """Replace every secret value (and its URL-encoded form) in the response text."""
    text = response.text
    for secret in secrets:
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
            text = text.replace(form, REDACTED)
    response.text = text
    return response


def _is_local(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")
