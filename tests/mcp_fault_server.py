"""An MCP server that misbehaves on request, for the executor's tests (written with the SDK).

    python tests/mcp_fault_server.py [--slow-start S] [--name NAME]      stdio
    python tests/mcp_fault_server.py http PORT                            streamable HTTP on /mcp
    python tests/mcp_fault_server.py --garbage                            prints junk, never initialises
    python tests/mcp_fault_server.py --raw                                hand-written: mismatch, garbage
    python tests/mcp_fault_server.py --null-schema                        --raw + a tool with inputSchema null

Tools: echo, weather (structuredContent with an outputSchema), image, fail (isError), crash (dies mid-call), slow
(sleeps), big (N MB of text), mixed (resource link + embedded resource), wipe (destructive),
rendezvous (returns "met" only if the peers call at the same time: proves concurrency
without timing).
"""


import json
import os
import sys
import time
from pathlib import Path

# A 1x1 PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000185d3f5a40000000049454e44ae426082")


def raw_server(mode: str) -> None:
    """No SDK, for answers the SDK would not write: junk on stdout and no handshake (--garbage),
    or a hand-written server (--raw) whose `mismatch` tool returns structuredContent that does
    not fit its outputSchema and whose `garbage` tool answers a malformed result; --null-schema
    also lists a tool whose inputSchema is null."""
    if mode == "--garbage":
        print("this is not JSON-RPC", flush=True)
        time.sleep(3600)
    tools = [{"name": "mismatch", "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
              "outputSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
             {"name": "garbage", "description": "Answers a malformed result.", "inputSchema": {"type": "object"}}]
    if mode == "--null-schema":
        tools.append({"name": "broken_tool", "description": "Listed with a null schema.", "inputSchema": None})
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message:
            continue
        if message["method"] == "initialize":
            result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "raw", "version": "0"}}
        elif message["method"] == "tools/list":
            result = {"tools": tools}
        elif message["method"] == "tools/call" and message["params"]["name"] == "mismatch":
            result = {"content": [{"type": "text", "text": "{}"}], "structuredContent": {"town": "Oslo"}}
        elif message["method"] == "tools/call":
            result = {"content": "not a list of blocks"}
        else:
            result = {}
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)


def build(name: str):
    import anyio
    from mcp.server.mcpserver import Image, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, EmbeddedResource, ResourceLink, TextContent, TextResourceContents, ToolAnnotations
    from pydantic import BaseModel

    server = MCPServer(name, log_level="WARNING")

    class Weather(BaseModel):
        city: str
        temp_c: float

    @server.tool(description="Echo the text back.", annotations=ToolAnnotations(read_only_hint=True))
    def echo(text: str) -> str:
        return text

    @server.tool(description="The weather in a city.")
    def weather(city: str) -> Weather:
        return Weather(city=city, temp_c=21.5)

    @server.tool(description="A tiny PNG image.")
    def image() -> Image:
        return Image(data=PNG, format="png")

    @server.tool(description="Always fails.")
    def fail(message: str = "boom") -> str:
        raise ToolError(message)

    @server.tool(description="Kills the server mid-call.")
    def crash() -> str:
        os._exit(3)

    @server.tool(description="Sleeps, then answers.")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool(description="A long text.")
    def big(megabytes: int = 10) -> str:
        return "x" * (megabytes * 1_000_000)

    @server.tool(description="A resource link and an embedded resource.")
    def mixed() -> CallToolResult:
        return CallToolResult(content=[
            TextContent(text="see the files"),
            ResourceLink(name="report", uri="file:///tmp/report.txt", mime_type="text/plain"),
            EmbeddedResource(resource=TextResourceContents(uri="mem://note", text="inline note", mime_type="text/plain")),
        ])

    @server.tool(description="Deletes everything.", annotations=ToolAnnotations(destructive_hint=True))
    def wipe() -> str:
        return "wiped"

    @server.tool(description="Waits up to 5 s for the peers' calls to arrive.")
    async def rendezvous(directory: str, me: str, peers: int) -> str:
        Path(directory, me).touch()
        for _ in range(500):
            if len(list(Path(directory).iterdir())) >= peers:
                return "met"
            await anyio.sleep(0.01)
        return "alone"

    return server


def main(argv: list[str]) -> None:
    for mode in ("--garbage", "--raw", "--null-schema"):
        if mode in argv:
            raw_server(mode)
            return
    name = argv[argv.index("--name") + 1] if "--name" in argv else "fault"
    print(f"fault server {name} starting; token={os.environ.get('FAULT_TOKEN', '-')}", file=sys.stderr, flush=True)
    if "--slow-start" in argv:
        time.sleep(float(argv[argv.index("--slow-start") + 1]))
    server = build(name)
    if argv[:1] == ["http"]:
        server.run(transport="streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
