"""The executor: a call `{name, arguments}` -> an `Observation`, against the response cache.

Modes (what happens on a cache miss):
- `replay`: nothing live; a miss is the error observation "no cached response".
- `record`: the live executor runs and its real response fills the cache.
- `simulate`: an LLM writes a plausible response (see simulate.py), stored with
  source=simulated; `execute_many` sends all of a batch's misses to the backend at once.

In every mode the cache is read first: a real entry comes back with source `cached`, a simulated
one with source `simulated` (never as a real one). `record` treats a simulated entry as a miss,
so a real response replaces it. *Local* tools (Python callables: built-ins and registered
functions) need no network and are deterministic, so they run in every mode; only `record`
writes their responses to the cache.

Nothing here raises on a bad call: an unknown tool, arguments that are not JSON or do not match
the tool's schema, a tool that raises, hangs, or returns junk all become error observations the
model can learn from, and the run goes on. Only real responses are cached, errors only when
`cache_errors` is set (and never timeouts or connection failures, which say nothing about the tool).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import jsonschema

from imaginarium import secrets
from imaginarium.errors import InputError
from imaginarium.executor.cache import CacheEntry, EntrySource, ResponseCache
from imaginarium.executor.http import HttpExecutor
from imaginarium.executor.observation import (
    DEFAULT_MAX_CHARS,
    Observation,
    Response,
    Source,
    contained,
    error_observation,
    render,
    text_of,
)
from imaginarium.jsonutil import canonical_json, content_hash
from imaginarium.schemas.importers.python import PYTHON_FORMAT, resolve
from imaginarium.schemas.toolspec import ToolSpec

Mode = Literal["replay", "record", "simulate"]
MODES = ("replay", "record", "simulate")
# Never cached: they say nothing lasting about the tool (or are refused as harmful).
_INFRASTRUCTURE_ERRORS = {"timeout", "connection_error", "bad_response"}
# Errors of calls that never reached a tool: not cached, and their observations have no source.
_NOT_RUN = {"no_executor", "not_allowed", "server_unavailable"}
_MAX_LISTED_ERRORS = 5


def tool_version(tool: ToolSpec) -> str:
    """A short hash of what shapes a tool's responses: its parameters, returns and HTTP binding."""
    shape = tool.model_dump(mode="json", include={"parameters", "returns", "http"})
    if shape.get("http") and shape["http"].get("auth") is None:
        del shape["http"]["auth"]  # auth hints arrived later: tools without them keep their version
    return content_hash(shape)[:16]


def has_live_executor(tool: ToolSpec) -> bool:
    """True when a live call can be made: a Python tool, an HTTP binding or an MCP binding."""
    return tool.source.format == PYTHON_FORMAT or tool.http is not None or tool.mcp is not None


class Executor:
    """Runs tool calls for one set of tools against one response cache."""

    def __init__(
        self,
        tools: Iterable[ToolSpec] | Mapping[str, ToolSpec],
        cache: ResponseCache | None = None,
        mode: Mode = "replay",
        *,
        live: Mapping[str, Callable[..., Any]] | None = None,
        http: HttpExecutor | None = None,
        simulator: Any = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        cache_errors: bool = False,
        python_timeout_s: float = 10.0,
        mcp: Any = None,
        allow_destructive: bool | Iterable[str] = False,
    ):
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if mode == "simulate" and simulator is None:
            raise InputError("mode 'simulate' needs a simulator (an LLM backend)")
        self.tools = dict(tools) if isinstance(tools, Mapping) else {t.name: t for t in tools}
        self.cache = cache
        self.mode = mode
        self.live = dict(live or {})
        self.http = http
        self.simulator = simulator
        self.max_chars = max_chars
        self.cache_errors = cache_errors
        self.python_timeout_s = python_timeout_s
        self.mcp = mcp  # McpClients, made on the first live MCP call when not given
        self.allow_destructive: bool | set[str] = (allow_destructive if isinstance(allow_destructive, bool)
                                                   else set(allow_destructive))
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    # -- public ----------------------------------------------------------------------------
    def execute(self, call: Mapping[str, Any]) -> Observation:
        """Run one call `{"name": ..., "arguments": {...} or a JSON string}`."""
        return self.execute_many([call])[0]

    def execute_many(self, calls: list[Mapping[str, Any]]) -> list[Observation]:
        """Run calls in order; in simulate mode all misses go to the backend in one batch."""
        results: list[Observation | None] = [None] * len(calls)
        to_simulate: list[tuple[int, ToolSpec, dict[str, Any]]] = []
        to_mcp: list[tuple[int, ToolSpec, dict[str, Any], float]] = []
        for index, call in enumerate(calls):
            start = time.perf_counter()
            parsed = self._parse(call)
            if isinstance(parsed, Observation):
                results[index] = parsed
                continue
            tool, arguments = parsed
            entry = self.cache.get(tool.name, arguments) if self.cache is not None else None
            if entry is not None and not (self.mode == "record" and entry.source == "simulated"):
                source: Source = "cached" if entry.source == "real" else "simulated"
                response = Response(entry.response, "ok" if entry.status == "ok" else "error", entry.error_kind,
                                    entry.content_type, entry.total_chars)
                results[index] = self._render(response, source, start)
            elif tool.mcp is not None and self.mode == "record" and self._allowed(tool):
                to_mcp.append((index, tool, arguments, start))
            elif self._is_local(tool) or self.mode == "record":
                response = contained(self._run_live(tool, arguments))
                if self.mode == "record":
                    self._store(tool, arguments, response, "real")
                results[index] = self._render(response, _source_of(response), start)
            elif self.mode == "replay":
                results[index] = error_observation(
                    f"no cached response for {tool.name} with these arguments (replay mode runs nothing live)",
                    "cache_miss", _ms(start))
            else:
                to_simulate.append((index, tool, arguments))
        if to_mcp:
            self._run_mcp(to_mcp, results)
        if to_simulate:
            self._simulate(to_simulate, results)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Stop what this executor started (MCP servers and their sessions, HTTP connections)."""
        if self.mcp is not None:
            self.mcp.close()
        if self.http is not None:
            self.http.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- parsing and validation ------------------------------------------------------------
    def _parse(self, call: Mapping[str, Any]) -> tuple[ToolSpec, dict[str, Any]] | Observation:
        name = call.get("name") if isinstance(call, Mapping) else None
        if not isinstance(name, str) or name not in self.tools:
            known = sorted(self.tools)
            listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
            return error_observation(f"no tool named {name!r}; available tools: {listed}", "unknown_tool")
        tool = self.tools[name]
        arguments = call.get("arguments", {})
        if arguments is None:
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return error_observation(
                    f"invalid arguments for {name}: not valid JSON ({exc.msg} at character {exc.pos}); "
                    f"expected a JSON object: {_expected(tool)}", "invalid_arguments")
        if not isinstance(arguments, dict):
            return error_observation(
                f"invalid arguments for {name}: expected a JSON object, got {type(arguments).__name__}; "
                f"expected: {_expected(tool)}", "invalid_arguments")
        try:
            canonical_json(arguments)  # the cache key needs it: NaN and infinities are not JSON
        except ValueError as exc:
            return error_observation(f"invalid arguments for {name}: {exc}. Expected: {_expected(tool)}",
                                     "invalid_arguments")
        errors = sorted(self._validator(tool).iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if errors:
            problems = "; ".join(_describe_error(e) for e in errors[:_MAX_LISTED_ERRORS])
            more = f" (and {len(errors) - _MAX_LISTED_ERRORS} more)" if len(errors) > _MAX_LISTED_ERRORS else ""
            return error_observation(
                f"invalid arguments for {name}: {problems}{more}. Expected: {_expected(tool)}", "invalid_arguments")
        return tool, arguments

    def _validator(self, tool: ToolSpec):
        if tool.name not in self._validators:
            self._validators[tool.name] = jsonschema.Draft202012Validator(
                tool.parameters, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        return self._validators[tool.name]

    # -- running ---------------------------------------------------------------------------
    def _is_local(self, tool: ToolSpec) -> bool:
        return tool.name in self.live or tool.source.format == PYTHON_FORMAT

    def _run_live(self, tool: ToolSpec, arguments: dict[str, Any]) -> Response:
        if self._is_local(tool):
            try:
                func = self.live.get(tool.name) or resolve(tool)
            except InputError as exc:
                return Response(str(exc), "error", "no_executor")
            return self._run_python(tool, func, arguments)
        if not self._allowed(tool):
            return Response(f"{tool.name} is marked destructive (destructiveHint); it runs live only with "
                            f"--allow-destructive or --allow-destructive-tools {tool.name}", "error", "not_allowed")
        if tool.mcp is not None:
            return self._mcp_clients().call(tool, arguments)
        if tool.http is not None:
            if self.http is None:
                self.http = HttpExecutor()
            return self.http.call(tool, arguments)
        return Response(f"tool {tool.name} has no live executor (neither a Python function nor an HTTP binding)",
                        "error", "no_executor")

    def _run_python(self, tool: ToolSpec, func: Callable[..., Any], arguments: dict[str, Any]) -> Response:
        """Run a Python tool in a daemon thread, so a tool that hangs costs a timeout, not the run.

        A hung thread cannot be killed in Python; it is left behind (daemon, so it does not keep
        the process alive) and the call reports a timeout.
        """
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = func(**arguments)
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=target, name=f"tool-{tool.name}", daemon=True)
        thread.start()
        thread.join(self.python_timeout_s)
        if thread.is_alive():
            return Response(f"{tool.name} did not finish within {self.python_timeout_s:g} s", "error", "timeout")
        if "error" in outcome:
            exc = outcome["error"]
            return Response(f"{type(exc).__name__}: {exc}", "error", "exception")
        text, content_type = text_of(outcome.get("value"))
        return Response(text, "ok", content_type=content_type)

    def _allowed(self, tool: ToolSpec) -> bool:
        allowed = self.allow_destructive
        return not tool.destructive or allowed is True or (isinstance(allowed, set) and tool.name in allowed)

    def _mcp_clients(self):
        if self.mcp is None:
            from imaginarium.executor.mcp import McpClients

            self.mcp = McpClients(timeout_s=self.python_timeout_s)
        return self.mcp

    def _run_mcp(self, items: list[tuple[int, ToolSpec, dict[str, Any], float]], results: list) -> None:
        """Live MCP calls of one batch, concurrently (record mode)."""
        responses = self._mcp_clients().call_many([(tool, arguments) for _, tool, arguments, _ in items])
        for (index, tool, arguments, start), response in zip(items, responses):
            response = contained(response)
            self._store(tool, arguments, response, "real")
            results[index] = self._render(response, _source_of(response), start)

    def _simulate(self, items: list[tuple[int, ToolSpec, dict[str, Any]]], results: list) -> None:
        start = time.perf_counter()
        k = getattr(self.simulator, "examples_k", 3)
        examples = [self.cache.examples(tool.name, k) if self.cache is not None else [] for _, tool, _ in items]
        responses = self.simulator.simulate([(tool, args, ex) for (_, tool, args), ex in zip(items, examples)])
        elapsed = _ms(start) / len(items)
        for (index, tool, arguments), response in zip(items, responses):
            if response.status == "ok":
                self._store(tool, arguments, response, "simulated")
            results[index] = render(response, "simulated", max_chars=self.max_chars, latency_ms=elapsed)

    def _store(self, tool: ToolSpec, arguments: dict[str, Any], response: Response, source: EntrySource) -> None:
        response.text = secrets.redact(response.text)  # a tool may echo a key: never into the cache
        if self.cache is None or response.error_kind in _INFRASTRUCTURE_ERRORS or response.error_kind in _NOT_RUN:
            return
        if response.status == "error" and not self.cache_errors:
            return
        self.cache.put(CacheEntry(
            tool=tool.name, arguments=arguments, response=response.text, status=response.status,
            source=source, error_kind=response.error_kind, tool_version=tool_version(tool),
            total_chars=response.total_chars, content_type=response.content_type))

    def _render(self, response: Response, source: Source | None, start: float) -> Observation:
        response.text = secrets.redact(response.text)
        return render(response, source, max_chars=self.max_chars, latency_ms=_ms(start))


def _source_of(response: Response) -> Source | None:
    """`real` only when a live call reached the tool; None when nothing ran."""
    return None if response.error_kind in _NOT_RUN else "real"


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _describe_error(error: jsonschema.ValidationError) -> str:
    field = "/".join(str(p) for p in error.absolute_path)
    return f"field {field!r}: {error.message}" if field else error.message


def _expected(tool: ToolSpec) -> str:
    """A one-line summary of the parameters, e.g. `date (string, required), days (integer)`."""
    properties = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    if not properties:
        return "no arguments ({})"
    parts = []
    for name, schema in properties.items():
        kind = schema.get("type") or ("enum " + "|".join(map(str, schema["enum"])) if "enum" in schema else "any")
        kind = "|".join(kind) if isinstance(kind, list) else kind
        parts.append(f"{name} ({kind}{', required' if name in required else ''})")
    return ", ".join(parts)
