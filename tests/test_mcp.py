"""Live MCP servers: import, execute, record and replay, with real servers the tests start.

Servers: `mcp-server-time` and `mcp-server-git` from PyPI (test dependencies), and
tests/mcp_fault_server.py (written with the SDK: it hangs, dies, answers 10 MB, errors, images,
starts slowly; a hand-written mode answers what the SDK would not write). Every server is a
real subprocess (stdio) or a real HTTP server; nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imaginarium.executor.cache import ResponseCache
from imaginarium.executor.executor import Executor
from imaginarium.executor.mcp import McpClients
from imaginarium.executor.options import ExecutionOptions, open_executor
from imaginarium.executor.tools_import import ImportConfig, import_tools
from imaginarium.schemas.importers.mcp import read_servers
from imaginarium.schemas.toolspec import read_tools

HERE = Path(__file__).parent
FAULT = HERE / "mcp_fault_server.py"
BIN = Path(sys.executable).parent
TIME_SERVER, GIT_SERVER = shutil.which("mcp-server-time", path=str(BIN)), shutil.which("mcp-server-git", path=str(BIN))
needs_servers = pytest.mark.skipif(not (TIME_SERVER and GIT_SERVER), reason="mcp-server-time/git not installed")


def servers_file(path: Path, servers: dict) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


def fault(*args: str, **extra) -> dict:
    return {"command": sys.executable, "args": [str(FAULT), *args], **extra}


def git_repo(path: Path) -> Path:
    path.mkdir()
    for command in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "T"]):
        subprocess.run(["git", *command], cwd=path, check=True)
    (path / "a.txt").write_text("hello\n")
    subprocess.run(["git", "add", "a.txt"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "first"], cwd=path, check=True)
    (path / "a.txt").write_text("hello again\n")
    return path


@pytest.fixture(scope="module")
def fault_tools(tmp_path_factory):
    """The fault server's tools, imported live (a server started and stopped for the listing)."""
    root = tmp_path_factory.mktemp("fault")
    config = servers_file(root / "servers.json", {"fault": fault(), "raw": fault("--raw")})
    tools, _ = import_tools([], root / "tools.jsonl", ImportConfig(mcp_config=config))
    return {tool.name: tool for tool in tools}, config


# -- import ----------------------------------------------------------------------------------
@needs_servers
def test_import_from_a_servers_file_keeps_bindings_annotations_and_no_secret(tmp_path, run, monkeypatch):
    repo = git_repo(tmp_path / "repo")
    monkeypatch.setenv("GIT_SECRET", "header-secret-value")
    config = servers_file(tmp_path / "servers.json", {
        "time": {"command": TIME_SERVER, "args": ["--local-timezone", "UTC"], "env": {"API_TOKEN": "env-secret-value"}},
        "git": {"command": GIT_SERVER, "args": ["-r", str(repo)]},
    })
    code, out, err = run("tools", "import", "--mcp-config", config, "-o", tmp_path / "tools.jsonl")
    assert code == 0, err
    assert "2 tools  mcp-server:time" in out and "12 tools  mcp-server:git" in out
    text = (tmp_path / "tools.jsonl").read_text()
    assert "env-secret-value" not in text
    tools = {tool.name: tool for tool in read_tools(tmp_path / "tools.jsonl")}
    assert len(tools) == 14
    now = tools["get_current_time"]
    assert now.mcp.server == "time" and now.mcp.transport == "stdio" and now.mcp.command == TIME_SERVER
    assert now.mcp.env == ["API_TOKEN"]  # the name only
    assert now.returns["required"] == ["timezone", "datetime", "day_of_week", "is_dst"]  # outputSchema
    assert now.annotations["readOnlyHint"] is True
    assert tools["git_reset"].destructive and not tools["git_status"].destructive


def test_servers_file_forms_keep_names_of_secrets_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "t0ken-value")
    path = tmp_path / "vscode.json"
    path.write_text(json.dumps({"servers": {
        "remote": {"type": "http", "url": "https://mcp.example.com/mcp",
                   "headers": {"Authorization": "Bearer ${env:TOKEN}", "X-Key": "literal-key-value"}},
        "local": {"command": "srv", "args": ["--token", "${TOKEN}"]},
    }}))
    servers = read_servers(path)
    remote, local = servers["remote"], servers["local"]
    assert remote.binding.headers == {"Authorization": "Bearer ${env:TOKEN}", "X-Key": None}
    assert remote.headers["Authorization"] == "Bearer t0ken-value"  # resolved for the run only
    assert local.binding.args == ["--token", "${TOKEN}"] and local.args == ["--token", "t0ken-value"]
    dumped = remote.binding.model_dump_json() + local.binding.model_dump_json()
    assert "t0ken-value" not in dumped and "literal-key-value" not in dumped


@pytest.mark.parametrize(("servers", "extra", "expected"), [
    ({"fault": fault()}, ["--mcp-server", "nosuch"], "no MCP server named 'nosuch'"),
    ({"gone": {"command": "/nonexistent/mcp-server"}}, [], "MCP server 'gone' did not start: command not found"),
    ({"junk": fault("--garbage")}, ["--mcp-start-timeout", "1"], "MCP server 'junk' did not start: no answer to initialize"),
    ({"raw": fault("--null-schema")}, [], "MCP server 'raw': invalid tools/list result: tool 'broken_tool': inputSchema"),
    ({"odd": {"url": "ftp://example.com"}}, [], "MCP server 'odd'"),
])
def test_bad_servers_are_one_line_naming_the_server_and_nothing_is_written(tmp_path, run, servers, extra, expected):
    config = servers_file(tmp_path / "servers.json", servers)
    started = time.monotonic()
    code, _out, err = run("tools", "import", "--mcp-config", config, *extra, "-o", tmp_path / "tools.jsonl")
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "tools.jsonl").exists()
    assert time.monotonic() - started < 15  # a server that never initialises costs its deadline, not a hang


def test_import_from_a_command_names_the_server_after_the_script(tmp_path, run):
    code, _out, err = run("tools", "import", "--mcp-command", f"{sys.executable} {FAULT}", "-o", tmp_path / "t.jsonl")
    assert code == 0, err
    tools = read_tools(tmp_path / "t.jsonl")
    assert {t.mcp.server for t in tools} == {"mcp_fault_server"}
    assert tools[0].mcp.args == [str(FAULT)]


# -- execution -------------------------------------------------------------------------------
def test_results_are_mapped_and_one_session_serves_every_call(tmp_path, fault_tools):
    tools, config = fault_tools
    with ResponseCache(tmp_path / "cache.sqlite") as cache, \
            McpClients(timeout_s=30, servers=read_servers(config)) as clients:
        executor = Executor(tools, cache, "record", mcp=clients, cache_errors=True)
        echo = executor.execute({"name": "echo", "arguments": {"text": "hi"}})
        assert (echo.status, echo.source, echo.structured) == ("ok", "real", {"result": "hi"})
        weather = executor.execute({"name": "weather", "arguments": {"city": "Oslo"}})
        assert json.loads(weather.content) == {"city": "Oslo", "temp_c": 21.5} and weather.schema_error is None
        image = executor.execute({"name": "image", "arguments": {}})
        assert image.content.startswith("[image: image/png, 66 bytes, sha256 ")
        failed = executor.execute({"name": "fail", "arguments": {"message": "nope"}})
        assert (failed.status, failed.error_kind, failed.source) == ("error", "tool_error", "real")
        assert "nope" in failed.content
        mixed = executor.execute({"name": "mixed", "arguments": {}})
        assert "[resource link: report <file:///tmp/report.txt> (text/plain)]" in mixed.content
        assert "inline note" in mixed.content and "non-JSON" not in mixed.content
        big = executor.execute({"name": "big", "arguments": {"megabytes": 10}})
        assert big.truncated and big.content.endswith(f"... [truncated {10_000_000 - 4096:,} chars]")
        assert len(cache.get("big", {"megabytes": 10}).response) < 1_100_000  # stored capped, not 10 MB
        clients.timeout_s = 1
        slow = executor.execute({"name": "slow", "arguments": {"seconds": 30}})
        assert (slow.status, slow.error_kind) == ("error", "timeout")
        assert executor.execute({"name": "echo", "arguments": {"text": "still here"}}).ok  # the session survived
        wipe = executor.execute({"name": "wipe", "arguments": {}})
        assert (wipe.error_kind, wipe.source) == ("not_allowed", None)
        mismatch = executor.execute({"name": "mismatch", "arguments": {"city": "Oslo"}})
        assert mismatch.ok and "'city' is a required property" in mismatch.schema_error
        garbage = executor.execute({"name": "garbage", "arguments": {}})
        assert (garbage.status, garbage.error_kind) == ("error", "protocol_error")
        assert clients.starts == {"fault": 1, "raw": 1}
        assert cache.get("slow", {"seconds": 30}) is None and cache.get("wipe", {}) is None  # not results of the tool
    allowed = Executor(tools, None, "record", allow_destructive=["wipe"])
    try:
        wiped = allowed.execute({"name": "wipe", "arguments": {}})
        assert (wiped.content, wiped.source) == ('{"result": "wiped"}', "real")
    finally:
        allowed.close()


def test_a_server_that_dies_is_restarted_once_and_its_stderr_is_logged_without_secrets(tmp_path, fault_tools, caplog):
    tools, _ = fault_tools
    config = servers_file(tmp_path / "servers.json", {"fault": fault(env={"FAULT_TOKEN": "very-secret-token"})})
    with caplog.at_level(logging.WARNING, logger="imaginarium.mcp"), \
            McpClients(timeout_s=5, servers=read_servers(config)) as clients:
        executor = Executor(tools, None, "record", mcp=clients)
        first = executor.execute({"name": "crash", "arguments": {}})
        assert (first.status, first.error_kind) == ("error", "connection_error") and "restarted" in first.content
        assert executor.execute({"name": "echo", "arguments": {"text": "back"}}).ok
        executor.execute({"name": "crash", "arguments": {}})
        after = executor.execute({"name": "echo", "arguments": {"text": "again"}})
        assert (after.error_kind, after.source) == ("server_unavailable", None) and "died twice" in after.content
        assert clients.starts == {"fault": 2}
    logged = caplog.text
    assert "fault server fault starting; token=***" in logged and "very-secret-token" not in logged


def test_calls_to_two_servers_run_at_the_same_time(tmp_path, fault_tools):
    tools, _ = fault_tools
    config = servers_file(tmp_path / "servers.json", {"a": fault("--name", "a"), "b": fault("--name", "b")})
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    pair = []
    for server in ("a", "b"):
        tool = tools["rendezvous"].model_copy(deep=True)
        tool.name, tool.mcp.server = f"rendezvous_{server}", server
        pair.append(tool)
    with McpClients(timeout_s=10, servers=read_servers(config)) as clients:
        executor = Executor(pair, None, "record", mcp=clients)
        results = executor.execute_many([
            {"name": "rendezvous_a", "arguments": {"directory": str(meeting), "me": "a", "peers": 2}},
            {"name": "rendezvous_b", "arguments": {"directory": str(meeting), "me": "b", "peers": 2}},
        ])
    assert [r.content for r in results] == ['{"result": "met"}'] * 2  # each waited for the other: concurrent


def test_slow_start_is_waited_for_and_a_silent_server_is_an_error_observation(tmp_path, fault_tools):
    tools, _ = fault_tools
    config = servers_file(tmp_path / "servers.json", {"fault": fault("--slow-start", "1.5")})
    with McpClients(timeout_s=5, start_timeout_s=20, servers=read_servers(config)) as clients:
        assert Executor(tools, None, "record", mcp=clients).execute({"name": "echo", "arguments": {"text": "x"}}).ok
    silent = servers_file(tmp_path / "silent.json", {"fault": fault("--garbage")})
    started = time.monotonic()
    with McpClients(timeout_s=5, start_timeout_s=1, servers=read_servers(silent)) as clients:
        observation = Executor(tools, None, "record", mcp=clients).execute({"name": "echo", "arguments": {"text": "x"}})
    assert (observation.error_kind, observation.source) == ("server_unavailable", None)
    assert "no answer to initialize within 1 s" in observation.content
    assert time.monotonic() - started < 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_streamable_http_server_import_and_call(tmp_path, run):
    port = free_port()
    server = subprocess.Popen([sys.executable, str(FAULT), "http", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/mcp"
        code, out, err = run("tools", "import", "--mcp-url", url, "-o", tmp_path / "tools.jsonl")
        assert code == 0, err
        tools = {t.name: t for t in read_tools(tmp_path / "tools.jsonl")}
        assert tools["echo"].mcp.transport == "http" and tools["echo"].mcp.url == url
        code, out, err = run("tools", "call", tmp_path / "tools.jsonl", "echo", '{"text": "over http"}',
                             "--cache", tmp_path / "c.sqlite", "--cache-mode", "record")
        assert code == 0 and json.loads(out)["structured"] == {"result": "over http"}, err
    finally:
        server.terminate()
        server.wait(10)


# -- provenance ------------------------------------------------------------------------------
def test_record_mode_refuses_tools_without_a_live_executor_before_generating(tmp_path, run):
    functions = tmp_path / "functions.json"
    functions.write_text(json.dumps([{"name": "lookup", "description": "Look up.",
                                      "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]))
    assert run("tools", "import", functions, "-o", tmp_path / "tools.jsonl")[0] == 0
    code, _, err = run("explore", "--tools", tmp_path / "tools.jsonl", "--cache", tmp_path / "c.sqlite",
                         "--cache-mode", "record", "--model", "tiny", "-o", tmp_path / "explore")
    assert code == 2 and "no live executor" in err and "lookup" in err and "Traceback" not in err
    assert not (tmp_path / "explore").exists()
    code, _out, err = run("tools", "call", tmp_path / "tools.jsonl", "lookup", '{"q": "x"}', "--cache",
                         tmp_path / "c.sqlite", "--cache-mode", "record")
    assert code == 2 and "lookup" in err


@needs_servers
def test_explore_records_over_time_and_git_then_replays_with_the_servers_gone(tmp_path, tiny_model):
    from imaginarium.generators.explore import ExploreConfig, explore
    from imaginarium.stage import read_rows

    repo = git_repo(tmp_path / "repo")
    config = servers_file(tmp_path / "servers.json", {
        "time": {"command": TIME_SERVER, "args": ["--local-timezone", "UTC"]},
        "git": {"command": GIT_SERVER, "args": ["-r", str(repo)]},
    })
    import_tools([], tmp_path / "tools.jsonl", ImportConfig(mcp_config=config))
    apis = ["get_current_time", "convert_time", "git_status", "git_log"]
    settings = dict(model=str(tiny_model), apis=apis, episodes=2, stm_slots=2, max_turns=2, max_query_chars=24,
                    max_thought_chars=12, max_answer_chars=24, max_argument_chars=12, max_tokens=96,
                    cache=tmp_path / "cache.sqlite", cache_errors=True)
    explore(tmp_path / "tools.jsonl", tmp_path / "record", ExploreConfig.from_flat({**settings, "cache_mode": "record"}),
            progress=False)
    recorded = read_rows(tmp_path / "record")
    # The servers are gone: the tools file now points at commands that do not exist.
    gone = (tmp_path / "tools.jsonl").read_text().replace(TIME_SERVER, "/gone/time").replace(GIT_SERVER, "/gone/git")
    (tmp_path / "gone.jsonl").write_text(gone)
    explore(tmp_path / "gone.jsonl", tmp_path / "replay", ExploreConfig.from_flat({**settings, "cache_mode": "replay"}),
            progress=False)
    replayed = read_rows(tmp_path / "replay")

    def observations(rows, keys=("content", "status", "error_kind", "structured")):
        return [(row["trial_id"], step["call"]["name"], {k: json.loads(step["observation"]).get(k) for k in keys})
                for row in rows for step in row["steps"] if step["action"] == "call"]

    assert observations(recorded) and observations(recorded) == observations(replayed)
    sources = {json.loads(s["observation"])["source"] for r in recorded for s in r["steps"] if s["action"] == "call"}
    assert sources <= {"real", "cached", None} and "real" in sources
    assert {json.loads(s["observation"])["source"] for r in replayed for s in r["steps"] if s["action"] == "call"
            } <= {"cached", None}


def test_open_executor_starts_servers_on_first_use_and_stops_them(tmp_path, fault_tools):
    tools, config = fault_tools
    options = ExecutionOptions(cache=tmp_path / "c.sqlite", cache_mode="record", mcp_config=config, timeout=5)
    with open_executor(list(tools.values()), options) as executor:
        assert executor.mcp.starts == {}
        assert executor.execute({"name": "echo", "arguments": {"text": "x"}}).ok
        live = dict(executor.mcp._live)
    assert live and executor.mcp._live == {} and executor.mcp._portal is None
