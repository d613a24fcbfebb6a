"""The live executor for HTTP tools (ToolSpec.http, from OpenAPI): one call -> one `Response`.

Every failure becomes a Response with status "error" and an `error_kind`, never an exception:
`http_status` (4xx/5xx after retries), `timeout`, `connection_error`, `bad_response`. On the
maintained httpx client (httpx2, the one the MCP SDK uses), with these rules:

- *Retries with backoff* on 429 and 5xx (honouring a short Retry-After) and on refused
  connections: public APIs fail transiently all the time, and a retry is cheaper than a lost trial.
  A timeout is not retried: it has already cost the full timeout.
- *One deadline per attempt* covers connecting, the headers and the whole body: a server that
  drips one byte a second is cut at `timeout_s`, not when it finishes.
- *Redirects* are followed by hand, at most MAX_REDIRECTS, http(s) only: a redirect loop, too many
  hops or a `file://` target is an error. Credentials (the API key header or query parameter,
  Authorization, Cookie) never cross to another origin.
- *Complete bodies only*: a body shorter than its Content-Length (the server closed early) is
  an error, not a success. At most `max_bytes` are kept; the rest is counted (up to a limit) so
  the observation can say how much was cut.
- *API keys* come from environment variables at call time (`ApiKey`), are sent as a header or a
  query parameter, registered as secrets and redacted (every form, imaginarium/secrets.py) from
  anything returned: the cache and the observations never contain them. Error messages name
  the URL without its query.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal

from imaginarium import secrets
from imaginarium.errors import InputError
from imaginarium.executor.observation import Response, text_of
from imaginarium.schemas.toolspec import ToolSpec

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_REDIRECTS = 5
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}
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
    _clients: dict[bool, Any] = field(default_factory=dict, repr=False)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Response:
        if tool.http is None:
            raise ValueError(f"tool {tool.name!r} has no HTTP binding")
        found = self._secrets(tool)
        call, shown_url = self._request(tool, arguments, found)
        response = self._send_with_retries(call, shown_url)
        return _scrub(response, [value for _key, value in found])

    # -- building the request --------------------------------------------------------------
    def _secrets(self, tool: ToolSpec) -> list[tuple[ApiKey, str]]:
        found = []
        for key in self.api_keys:
            if fnmatch.fnmatchcase(tool.name, key.tools):
                value = self.environ.get(key.env)
                if value:
                    secrets.register(value)
                    found.append((key, value))
        return found

    def _request(self, tool: ToolSpec, arguments: dict[str, Any], secrets_found: list[tuple[ApiKey, str]]
                 ) -> tuple[_Call, str]:
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
        secret_headers, secret_params = set(), set()
        for key, value in secrets_found:
            if key.location == "header":
                headers[key.name] = value
                secret_headers.add(key.name.lower())
            else:
                query.append((key.name, value))
                secret_params.add(key.name)
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
        call = _Call(binding.method.upper(), url, headers, data, secret_headers, secret_params)
        return call, shown_url

    # -- sending ---------------------------------------------------------------------------
    def _send_with_retries(self, call: _Call, shown_url: str) -> Response:
        attempt = 0
        while True:
            response, retry_after = self._send(call, shown_url)
            retryable = retry_after is not None
            if not retryable or attempt >= self.retries:
                return response
            delay = self.backoff_s * (2**attempt)
            if retry_after is not None and retry_after > 0:
                delay = max(delay, min(retry_after, self.max_retry_after_s))
            time.sleep(delay)
            attempt += 1

    def _client(self, url: str) -> Any:
        import httpx2

        local = _is_local(url)
        if local not in self._clients:  # local servers (mocks) bypass any proxy of the environment
            self._clients[local] = httpx2.Client(follow_redirects=False, trust_env=not local)
        return self._clients[local]

    def _send(self, call: _Call, shown_url: str) -> tuple[Response, float | None]:
        """One attempt, redirects included: (response, seconds before a retry, or None)."""
        import httpx2

        deadline = time.monotonic() + self.timeout_s
        method, url, headers, data = call.method, call.url, dict(call.headers), call.data
        origin = _origin(url)
        seen = {url}
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise httpx2.ReadTimeout("deadline")
                request = self._client(url).build_request(method, url, headers=headers, content=data,
                                                          timeout=httpx2.Timeout(remaining))
                reply = self._client(url).send(request, stream=True)
                try:
                    location = reply.headers.get("location")
                    if reply.status_code in (301, 302, 303, 307, 308) and location:
                        target = urllib.parse.urljoin(url, location)
                        if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                            return _failure("bad_response", f"{method} {shown_url} redirected to a non-HTTP URL "
                                                            f"({urllib.parse.urlsplit(target).scheme}:), refused"), None
                        if target in seen:
                            return _failure("bad_response", f"{method} {shown_url}: redirect loop"), None
                        seen.add(target)
                        if _origin(target) != origin:  # credentials stay with the origin they were meant for
                            headers = {k: v for k, v in headers.items()
                                       if k.lower() not in call.secret_headers | _CREDENTIAL_HEADERS}
                            target = _without_params(target, call.secret_params)
                        if reply.status_code == 303 or (reply.status_code in (301, 302) and method == "POST"):
                            method, data = "GET", None
                            headers.pop("Content-Type", None)
                        url = target
                        continue
                    response = self._read(reply, deadline)
                finally:
                    reply.close()
                if reply.status_code in RETRY_STATUSES:
                    return response, _retry_after(reply.headers)
                return response, None
            return _failure("bad_response", f"{method} {shown_url}: more than {MAX_REDIRECTS} redirects"), None
        except httpx2.TimeoutException:
            return _failure("timeout", f"no complete response from {call.method} {shown_url} within "
                                       f"{self.timeout_s:g} s"), None
        except httpx2.ConnectError as exc:
            refused = "refused" in str(exc).lower() or isinstance(exc.__cause__, ConnectionRefusedError)
            return _failure("connection_error", f"cannot connect for {call.method} {shown_url}: {exc}"), (
                0.0 if refused else None)
        except httpx2.RemoteProtocolError as exc:
            return _failure("bad_response", f"incomplete response from {call.method} {shown_url}: {exc}"), None
        except (httpx2.HTTPError, OSError, ValueError) as exc:  # a reset, a malformed reply or URL
            return _failure("connection_error", f"connection failed for {call.method} {shown_url}: {exc}"), None

    def _read(self, reply: Any, deadline: float) -> Response:
        """Read at most max_bytes of the body (then count the rest), within the deadline; a body
        shorter than its Content-Length raises (httpx: RemoteProtocolError)."""
        import httpx2

        chunks: list[bytes] = []
        kept = 0
        total = 0
        limit = self.max_bytes * _COUNT_LIMIT_FACTOR
        for chunk in reply.iter_raw():  # as the bytes arrive: the deadline is checked between them
            if time.monotonic() > deadline:
                raise httpx2.ReadTimeout("deadline")
            total += len(chunk)
            if kept <= self.max_bytes:
                chunks.append(chunk)
                kept += len(chunk)
            if total > limit:
                break
        data = b"".join(chunks)
        over_cap = total > self.max_bytes
        data = data[: self.max_bytes]
        header_length = reply.headers.get("content-length")
        if over_cap and header_length and header_length.isdigit():
            total = max(total, int(header_length))
        content_type_header = reply.headers.get("content-type")
        content_type = content_type_header.split(";")[0].strip().lower() if content_type_header else None
        text, content_type = text_of(_decode(data, content_type_header or ""), content_type)
        status = reply.status_code
        if status >= 400:
            text = f"HTTP {status} {reply.reason_phrase}\n{text}".rstrip()
            return Response(text=text, status="error", error_kind="http_status", content_type=content_type,
                            total_chars=total if over_cap else None)
        return Response(text=text, content_type=content_type, total_chars=total if over_cap else None)


@dataclass
class _Call:
    """A built request: what to send, and which headers and query parameters hold secrets."""

    method: str
    url: str
    headers: dict[str, str]
    data: bytes | None
    secret_headers: set[str]
    secret_params: set[str]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _without_params(url: str, names: set[str]) -> str:
    if not names:
        return url
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _decode(data: bytes, content_type: str) -> str | bytes:
    """Text in the declared charset when it decodes; the raw bytes (described later) otherwise."""
    message = Message()
    message["Content-Type"] = content_type or "application/octet-stream"
    charset = message.get_content_charset() or "utf-8"
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


def _retry_after(headers: Any) -> float:
    value = headers.get("retry-after", "") or ""
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def _failure(kind: str, message: str) -> Response:
    return Response(text=message, status="error", error_kind=kind)


def _scrub(response: Response, values: list[str]) -> Response:
    """Every secret, in every form it can be echoed in (imaginarium/secrets.py), redacted."""
    secrets.register(*values)
    response.text = secrets.redact(response.text)
    return response


def _is_local(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")
