"""Calling tools on live MCP servers, with the official `mcp` SDK.

Why it looks like this:
- One session per server per run: a stdio server costs ~0.6 s to start (mostly Python imports),
  so it is started on its first call, reused for every later one and closed at the end
  (`McpClients.close`, called by the Executor's close).
- The SDK is async (anyio) and the pipeline is not: one background event loop (an anyio
  blocking portal) hosts every session; a session's context is entered and left inside one
  portal task, as anyio's cancel scopes require. Calls to different servers (and several calls
  to one) run concurrently on that loop (`call_many`).
- Nothing waits forever: server start (spawn + initialize) has a deadline, every call has one.
  A call that times out is an error observation and the session stays usable. A server that
  dies is restarted once, on its next call; after a second death its calls are error
  observations at once. A server's stderr goes to a temporary file; its tail (bounded, secrets
  masked) reaches the log when the server fails or closes.
- Results are read raw, not through `ClientSession.call_tool`: the SDK raises when
  structuredContent does not match the tool's outputSchema, and here a mismatch is a flag on the
  observation, not a failure. `normalise` keeps what a model can use (text, structuredContent,
  described images and audio, resource links, embedded resources), drops `_meta` and binary data,
  and caps the size; the executor stores that JSON in the response cache (content type
  `MCP_RESULT`), so replay needs no server at all.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from typing import IO, Any

from imaginarium import secrets
from imaginarium.errors import InputError
from imaginarium.executor.observation import MCP_RESULT, Response
from imaginarium.schemas.importers.mcp import McpServer, runtime_values
from imaginarium.schemas.toolspec import McpBinding, ToolSpec

log = logging.getLogger("imaginarium.mcp")

MAX_STORED_CHARS = 1 << 20  # what is kept of one result's text (as the HTTP executor's byte cap)
_STDERR_TAIL_CHARS = 2000
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001


class McpStartError(Exception):
    """A server did not start or did not finish initialising; the message names it."""


class McpClients:
    """Live sessions to MCP servers, one per server name, opened on first use.

    Args:
        timeout_s: the deadline of one call.
        start_timeout_s: the deadline of a server's start (spawn or connect, then initialize).
        servers: run-time server entries by name (an `mcpServers` file given at run time); a
            tool's binding is used, with values from the environment, for the others.
    """

    def __init__(self, *, timeout_s: float = 10.0, start_timeout_s: float = 30.0,
                 servers: dict[str, McpServer] | None = None, max_chars: int = MAX_STORED_CHARS):
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.servers = dict(servers or {})
        self.max_chars = max_chars
        self.starts: dict[str, int] = {}  # server -> times started (1, or 2 after a restart)
        self._stack: ExitStack | None = None
        self._portal: Any = None
        self._live: dict[str, _Live] = {}
        self._failed: dict[str, str] = {}  # server -> why its calls fail at once
        self._bindings: dict[str, McpBinding] = {}
        self._lock = threading.Lock()
        # The SDK logs a server's protocol mistakes with tracebacks; what they mean reaches the
        # user as error observations and one-line errors instead (its log stays for -vv).
        sdk = logging.getLogger("mcp")
        if sdk.level == logging.NOTSET and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            sdk.setLevel(logging.CRITICAL)

    # -- public ----------------------------------------------------------------------------
    def list_tools(self, server: McpServer) -> list[Any]:
        """The raw `tools` of a server's tools/list (every page), for the importer.

        Raises:
            InputError: the server did not start, or answered something that is not a listing.
        """
        self.servers[server.binding.server] = server
        try:
            live = self._session(server.binding.server, server)
        except McpStartError as exc:
            raise InputError(str(exc)) from None
        return self._portal.call(_list_all, live.session, self.start_timeout_s, server.binding.server)

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Response:
        return self.call_many([(tool, arguments)])[0]

    def call_many(self, items: list[tuple[ToolSpec, dict[str, Any]]]) -> list[Response]:
        """Run calls concurrently (each server started first if needed); results in order."""
        results: list[Response | None] = [None] * len(items)
        ready: list[tuple[int, _Live, ToolSpec, dict[str, Any]]] = []
        for index, (tool, arguments) in enumerate(items):
            assert tool.mcp is not None
            self._bindings.setdefault(tool.mcp.server, tool.mcp)
            try:
                live = self._session(tool.mcp.server)
            except (McpStartError, InputError) as exc:
                results[index] = Response(str(exc), "error", "server_unavailable")
                continue
            ready.append((index, live, tool, arguments))
        if ready:
            outcomes = self._portal.call(_call_all, [(live.session, tool.source_name, arguments, self.timeout_s)
                                                      for _, live, tool, arguments in ready])
            for (index, live, tool, _), outcome in zip(ready, outcomes):
                results[index] = self._response(live, tool, outcome)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Close every session (stopping stdio servers) and the event loop."""
        with self._lock:
            for name in list(self._live):
                self._drop(name, log_level=logging.DEBUG)
            if self._stack is not None:
                self._stack.close()
            self._stack, self._portal = None, None

    def __enter__(self) -> McpClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions --------------------------------------------------------------------------
    def _session(self, name: str, server: McpServer | None = None) -> _Live:
        with self._lock:
            if name in self._live:
                return self._live[name]
            if name in self._failed:
                raise McpStartError(self._failed[name])
            if server is None:
                binding = self._bindings.get(name)
                server = self.servers.get(name) or (runtime_values(binding, self.servers) if binding else None)
            if server is None:
                raise McpStartError(f"MCP server {name!r} is unknown")
            if self._portal is None:
                from anyio.from_thread import start_blocking_portal

                self._stack = ExitStack()
                self._portal = self._stack.enter_context(start_blocking_portal())
            secrets.register(*server.secrets)  # environment and header values: redacted everywhere
            errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (lives with the session)
            manager = self._portal.wrap_async_context_manager(
                _open_session(server, errlog, self.start_timeout_s, self.timeout_s))
            self.starts[name] = self.starts.get(name, 0) + 1
            try:
                session = manager.__enter__()
            except BaseException as exc:  # the SDK's errors come wrapped in exception groups
                reason = _reason(exc, self.start_timeout_s)
                tail = _tail(errlog, server.secrets)
                errlog.close()
                message = f"MCP server {name!r} did not start: {reason}" + (f" (stderr: {_last_line(tail)})" if tail else "")
                log.info("%s%s", message, f"\n{tail}" if tail else "")
                self._failed[name] = message
                raise McpStartError(message) from None
            live = _Live(name, server, manager, session, errlog)
            self._live[name] = live
            return live

    def bind(self, tools: list[ToolSpec]) -> None:
        """Learn the servers of `tools` (their bindings), so a first call can start them."""
        self._bindings.update({t.mcp.server: t.mcp for t in tools if t.mcp is not None})

    def _drop(self, name: str, log_level: int = logging.WARNING) -> None:
        live = self._live.pop(name, None)
        if live is None:
            return
        with contextlib.suppress(Exception):  # a dead server's transport fails to close cleanly: nothing to keep
            live.manager.__exit__(None, None, None)
        tail = _tail(live.errlog, live.server.secrets)
        live.errlog.close()
        if tail:
            log.log(log_level, "MCP server %r stderr (tail):\n%s", name, tail)

    def _response(self, live: _Live, tool: ToolSpec, outcome: Any) -> Response:
        from mcp import MCPError
        from pydantic import ValidationError

        server = live.name
        if isinstance(outcome, dict):
            return normalise(outcome, tool, self.max_chars)
        if isinstance(outcome, MCPError) and outcome.code == _REQUEST_TIMEOUT:
            return Response(f"{tool.name} did not answer within {self.timeout_s:g} s (MCP server {server!r})",
                            "error", "timeout")
        if isinstance(outcome, MCPError) and outcome.code == _CONNECTION_CLOSED:
            with self._lock:
                if self._live.get(server) is live:
                    self._drop(server)
                    if self.starts.get(server, 0) >= 2:
                        self._failed[server] = f"MCP server {server!r} died twice; it is not restarted again"
            then = "it is not restarted again" if server in self._failed else "it is restarted on the next call"
            return Response(f"MCP server {server!r} closed the connection during the call of {tool.name} ({then})",
                            "error", "connection_error")
        if isinstance(outcome, MCPError):
            return Response(f"MCP error {outcome.code} from server {server!r}: {outcome.message}", "error",
                            "protocol_error")
        if isinstance(outcome, ValidationError):
            first = outcome.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return Response(f"MCP server {server!r} answered an invalid tools/call result ({where}: {first['msg']})",
                            "error", "protocol_error")
        return Response(f"MCP call of {tool.name} failed: {type(outcome).__name__}: {outcome}", "error",
                        "connection_error")


class _Live:
    """A started session: its server, the portal-side context (to close it) and stderr file."""

    def __init__(self, name: str, server: McpServer, manager: AbstractContextManager, session: Any, errlog: IO[str]):
        self.name, self.server, self.manager, self.session, self.errlog = name, server, manager, session, errlog


@asynccontextmanager
async def _open_session(server: McpServer, errlog: IO[str], start_timeout_s: float,
                        timeout_s: float) -> AsyncIterator[Any]:
    import anyio
    from mcp import ClientSession

    binding = server.binding
    if binding.transport == "stdio":
        from mcp import StdioServerParameters, stdio_client

        assert binding.command is not None
        params = StdioServerParameters(command=binding.command, args=server.args or list(binding.args),
                                       env=server.env or None, cwd=binding.cwd)
        async with (stdio_client(params, errlog=errlog) as (read, write),  # type: ignore[arg-type]  # a real file
                    ClientSession(read, write, read_timeout_seconds=timeout_s) as session):
            with anyio.fail_after(start_timeout_s):
                await session.initialize()
            yield session
    else:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        assert binding.url is not None
        timeout = httpx2.Timeout(max(timeout_s, start_timeout_s))
        async with (httpx2.AsyncClient(headers=server.headers, timeout=timeout, follow_redirects=False) as http,
                    streamable_http_client(binding.url, http_client=http) as (read, write),
                    ClientSession(read, write, read_timeout_seconds=timeout_s) as session):
            with anyio.fail_after(start_timeout_s):
                await session.initialize()
            yield session


async def _call_all(calls: list[tuple[Any, str, dict[str, Any], float]]) -> list[Any]:
    """Every call at once; each outcome is the raw result dict or the exception it raised."""
    import anyio

    outcomes: list[Any] = [None] * len(calls)

    async def one(index: int, session: Any, name: str, arguments: dict[str, Any], timeout: float) -> None:
        from mcp import types
        from pydantic import TypeAdapter

        try:
            request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments))
            outcomes[index] = await session.send_request(request, TypeAdapter(dict[str, Any]),
                                                         request_read_timeout_seconds=timeout)
        except Exception as exc:
            outcomes[index] = exc

    async with anyio.create_task_group() as group:
        for index, (session, name, arguments, timeout) in enumerate(calls):
            group.start_soon(one, index, session, name, arguments, timeout)
    return outcomes


async def _list_all(session: Any, timeout: float, server: str) -> list[Any]:
    from mcp import MCPError, types
    from pydantic import TypeAdapter, ValidationError

    tools: list[Any] = []
    cursor = None
    for _ in range(1000):  # pages; a server that never stops paging is cut off
        try:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.send_request(types.ListToolsRequest(params=params), TypeAdapter(dict[str, Any]),
                                              request_read_timeout_seconds=timeout)
        except ValidationError as exc:
            names = await _raw_tool_names(session, cursor, timeout)
            raise InputError(f"MCP server {server!r}: invalid tools/list result: {_validation_where(exc, names)}"
                             ) from None
        except MCPError as exc:
            raise InputError(f"MCP server {server!r}: tools/list failed: {exc.message}") from None
        tools.extend(page.get("tools") or [])
        cursor = page.get("nextCursor")
        if not cursor:
            break
    return tools


async def _raw_tool_names(session: Any, cursor: str | None, timeout: float) -> list[Any]:
    """The tool names of a listing the SDK refused, to name the broken tool. This reads the
    unvalidated answer through the SDK's dispatcher (not public API): an error path only, and
    without it the message names the tool by its position."""
    try:
        raw = await session._dispatcher.send_raw_request("tools/list", {"cursor": cursor} if cursor else None,
                                                         {"timeout": timeout})
        return [tool.get("name") if isinstance(tool, dict) else None for tool in raw.get("tools", [])]
    except Exception:
        return []


def _validation_where(exc: Any, names: list[Any]) -> str:
    first = exc.errors()[0]
    loc = list(first["loc"])
    if len(loc) >= 2 and loc[0] == "tools" and isinstance(loc[1], int):
        index = loc[1]
        tool = f"tool {names[index]!r}" if index < len(names) and isinstance(names[index], str) else f"tool #{index}"
        return f"{tool}: {'.'.join(str(p) for p in loc[2:])}: {first['msg']}"
    return f"{'.'.join(str(p) for p in loc)}: {first['msg']}"


# -- results ---------------------------------------------------------------------------------
def normalise(raw: dict[str, Any], tool: ToolSpec, max_chars: int = MAX_STORED_CHARS) -> Response:
    """A raw tools/call result -> the Response the cache stores (MCP_RESULT JSON)."""
    blocks = [_block(block) for block in raw.get("content") or [] if isinstance(block, dict)]
    is_error = raw.get("isError") is True
    result: dict[str, Any] = {"content": blocks, "isError": is_error}
    structured = raw.get("structuredContent")
    if structured is not None:
        if len(json.dumps(structured, ensure_ascii=False)) <= max_chars:
            result["structuredContent"] = structured
        else:
            result["structuredContentDropped"] = "larger than the stored limit"
    if tool.returns is not None and not is_error:
        problem = _schema_problem(structured, tool.returns)
        if problem:
            result["schemaError"] = problem
    total = sum(len(b.get("text", "")) for b in blocks)
    if total > max_chars:
        room = max_chars
        for block in blocks:
            if "text" in block:
                block["text"] = block["text"][:room]
                room -= len(block["text"])
        result["totalChars"] = total
    return Response(json.dumps(result, ensure_ascii=False), "error" if is_error else "ok",
                    "tool_error" if is_error else None, MCP_RESULT, total if total > max_chars else None)


def _block(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text", ""))}
    if kind in ("image", "audio"):
        return {"type": kind, "mimeType": block.get("mimeType"), **_data_facts(block.get("data"))}
    if kind == "resource_link":
        return {"type": kind, **{k: block[k] for k in ("uri", "name", "title", "description", "mimeType", "size")
                                 if block.get(k) is not None}}
    if kind == "resource":
        resource: dict[str, Any] = block["resource"] if isinstance(block.get("resource"), dict) else {}
        out = {"type": kind, "uri": resource.get("uri"), "mimeType": resource.get("mimeType")}
        if isinstance(resource.get("text"), str):
            out["text"] = resource["text"]
        else:
            out.update(_data_facts(resource.get("blob")))
        return out
    return {"type": str(kind)}


def _data_facts(data: Any) -> dict[str, Any]:
    """Size and hash of base64 data (the data itself is not kept: a model cannot read it)."""
    try:
        raw = base64.b64decode(data or "", validate=False)
    except (binascii.Error, ValueError, TypeError):
        raw = str(data).encode()
    return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()[:12]}


def _schema_problem(structured: Any, schema: dict[str, Any]) -> str | None:
    import jsonschema

    if structured is None:
        return "the tool declares an outputSchema but returned no structuredContent"
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(structured))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the tool's outputSchema is invalid: {exc.message}"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"structuredContent does not match the outputSchema at {where}: {error.message}"


# -- errors and stderr -----------------------------------------------------------------------
def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _reason(exc: BaseException, start_timeout_s: float) -> str:
    from mcp import MCPError

    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, FileNotFoundError):
            return f"command not found ({leaf.filename or leaf})"
        if isinstance(leaf, TimeoutError) or (isinstance(leaf, MCPError) and leaf.code == _REQUEST_TIMEOUT):
            return f"no answer to initialize within {start_timeout_s:g} s"
        if isinstance(leaf, MCPError) and leaf.code == _CONNECTION_CLOSED:
            return "it closed the connection before initialising"
        if isinstance(leaf, MCPError):
            return f"MCP error {leaf.code}: {leaf.message}"
        if isinstance(leaf, OSError):
            return f"{type(leaf).__name__}: {leaf.strerror or leaf}"
    leaf = leaves[0]
    name = type(leaf).__name__
    if name in ("ConnectError", "ConnectTimeout"):
        return "cannot connect to its URL"
    return f"{name}: {str(leaf).splitlines()[0] if str(leaf) else ''}".rstrip(": ")


def _tail(errlog: IO[str], secrets: list[str]) -> str:
    """The last lines of a server's stderr (bounded), with secret values masked."""
    try:
        errlog.flush()
        errlog.seek(0, 2)
        size = errlog.tell()
        errlog.seek(max(0, size - _STDERR_TAIL_CHARS * 2))
        text = errlog.read()[-_STDERR_TAIL_CHARS:]
    except (OSError, ValueError):
        return ""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text.strip()


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1][:200] if text.strip() else ""
