"""How a stage executes tool calls: the response cache, its mode, credentials, limits.

Every command that executes (explore, rank, tools call) takes these options with the same flags,
help and checks. `open_executor` is the one place that opens the cache, builds the live
executors and, in simulate mode, the simulator, and closes what it opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from imaginarium.executor.observation import DEFAULT_MAX_CHARS
from imaginarium.options import Options, named_list

if TYPE_CHECKING:
    from imaginarium.executor.executor import Executor
    from imaginarium.models.backend import Backend

CacheMode = Literal["replay", "record", "simulate"]


class ExecutionOptions(Options):
    """Where responses come from (cache, live, simulated) and how live calls are made."""

    cache: Path | None = Field(None, description="Response cache (SQLite; created if absent).")
    cache_mode: CacheMode = Field("replay", description=(
        "replay: the cache only (a miss is an error observation); record: live calls fill the cache; "
        "simulate: the model writes the misses (stored as simulated)."))
    api_key: list[str] = Field(default_factory=list, json_schema_extra={"multiple": True, "fingerprint": False,
                                                                        "metavar": "[GLOB@]header:NAME=ENV"},
                               description="Send the key held in environment variable ENV as header (or query:) NAME "
                                           "to the tools matching GLOB. Repeatable.")
    server_url: str | None = Field(None, pattern=r"^https?://\S+$", json_schema_extra={"fingerprint": False},
                                   description="Send HTTP tools' requests to this server instead of their own (a local "
                                               "mock, a proxy).")
    timeout: float = Field(10.0, gt=0, le=3600, json_schema_extra={"fingerprint": False},
                           description="Seconds per live call.")
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=16, le=10_000_000,
                           description="Longest observation the model sees; longer is cut with a visible marker.")
    cache_errors: bool = Field(False, description="Also cache real error responses (HTTP 4xx/5xx, tool exceptions).")
    mcp_config: Path | None = Field(None, json_schema_extra={"fingerprint": False}, description=(
        "An mcpServers JSON file with the MCP servers' run-time settings (environment values, headers, a moved "
        "command or URL). Default: each tool's own binding, values from the environment."))
    mcp_start_timeout: float = Field(30.0, gt=0, le=3600, json_schema_extra={"fingerprint": False},
                                     description="Seconds an MCP server may take to start and initialise.")
    allow_destructive: bool = Field(False, description=(
        "Run tools marked destructive (MCP destructiveHint) live in record mode; otherwise their calls are "
        "error observations."))
    allow_destructive_tools: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, json_schema_extra={"metavar": "NAME,..."},
                                               description="Destructive tools allowed to run live, by name.")

    @field_validator("api_key")
    @classmethod
    def _parse_keys(cls, value: list[str]) -> list[str]:
        from imaginarium.executor.http import ApiKey

        for spec in value:
            try:
                ApiKey.parse(spec)
            except Exception as exc:  # InputError: its text is the one-line reason
                raise ValueError(str(exc)) from None
        return value

    _lists = field_validator("allow_destructive_tools", mode="before")(named_list)

    @field_validator("mcp_config")
    @classmethod
    def _servers_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _cache_for_storing_modes(self) -> ExecutionOptions:
        if self.cache is None and self.cache_mode != "replay":
            raise ValueError(f"--cache-mode {self.cache_mode} stores responses: give --cache FILE (created if absent)")
        return self

    def describe(self) -> dict[str, str | None]:
        """What a manifest records (no credentials, no server address)."""
        return {"cache": str(self.cache) if self.cache else None, "cache_mode": self.cache_mode}


@contextlib.contextmanager
def open_executor(tools: Iterable, options: ExecutionOptions, *, simulator_backend: Callable[[], Backend] | None = None,
                  used: Iterable[str] | None = None, cache_shard: Path | None = None) -> Iterator[Executor]:
    """An Executor for `tools` as `options` say; the cache is closed on exit.

    `simulator_backend` returns the backend that writes simulated responses (called only in
    simulate mode, so a stage that never simulates never loads a model for it). `used` names the
    tools the stage may call (default all): in record mode each must have a live executor. MCP
    servers start on their first call and stop on exit. `cache_shard`: a worker of a sharded run
    (imaginarium/engine.py) reads the cache but writes to this shard file of its own
    (executor/cache_shards.py).

    Raises:
        InputError: simulate mode without a backend, record mode for tools with no live
            executor, a bad servers file, a corrupt cache file.
    """
    from imaginarium.errors import InputError
    from imaginarium.executor.cache import ResponseCache
    from imaginarium.executor.executor import Executor
    from imaginarium.executor.http import ApiKey, HttpExecutor

    tools = list(tools)
    if options.cache_mode == "record":
        require_live(tools, used)
    simulator = None
    if options.cache_mode == "simulate":
        if simulator_backend is None:
            raise InputError("--cache-mode simulate needs a model to write the responses")
        from imaginarium.executor.simulate import Simulator

        simulator = Simulator(simulator_backend())
    http = HttpExecutor(timeout_s=options.timeout, api_keys=tuple(ApiKey.parse(k) for k in options.api_key),
                        server_url=options.server_url)
    mcp = None
    if any(tool.mcp is not None for tool in tools):
        from imaginarium.executor.mcp import McpClients
        from imaginarium.schemas.importers.mcp import read_servers

        mcp = McpClients(timeout_s=options.timeout, start_timeout_s=options.mcp_start_timeout,
                         servers=read_servers(options.mcp_config) if options.mcp_config else None)
        mcp.bind(tools)
    cache: Any = None
    if options.cache is not None and cache_shard is not None:
        from imaginarium.executor.cache_shards import OverlayCache

        cache = OverlayCache(options.cache, cache_shard)
    elif options.cache is not None:
        cache = ResponseCache(options.cache)
    executor = Executor(tools, cache, options.cache_mode, http=http, simulator=simulator,
                        max_chars=options.max_chars, cache_errors=options.cache_errors,
                        python_timeout_s=options.timeout, mcp=mcp,
                        allow_destructive=options.allow_destructive or options.allow_destructive_tools)
    try:
        yield executor
    finally:
        executor.close()
        if cache is not None:
            cache.close()


def require_live(tools: Iterable, used: Iterable[str] | None = None) -> None:
    """Refuse record mode when a tool that may be called (`used`, default all) has no live
    executor: its calls could only fail, nothing would be recorded, and no observation may
    claim a real response. Called before any model is loaded.

    Raises:
        InputError: naming the tools (the first ten) and what would make them callable.
    """
    from imaginarium.errors import InputError
    from imaginarium.executor.executor import has_live_executor

    wanted = None if used is None else set(used)
    missing = sorted(t.name for t in tools if (wanted is None or t.name in wanted) and not has_live_executor(t))
    if missing:
        listed = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(f"--cache-mode record: {len(missing)} tool(s) have no live executor (not Python, HTTP or "
                         f"MCP): {listed}. Use replay or simulate for them, or import them from a live source.")
