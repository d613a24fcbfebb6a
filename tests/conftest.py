"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # torch on CPU: skip ~10 s of compiling


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of the embedded tiny model (seed 0), built once per test session."""
    from imaginarium.generators.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def toolbench_tools():
    """The 817 ToolBench/RapidAPI tools of the STE data, imported once per test session."""
    from paths import TOOLBENCH

    from imaginarium.schemas.importers import import_file

    if not TOOLBENCH.is_file():
        pytest.skip(f"{TOOLBENCH} is not here")
    tools = import_file(TOOLBENCH, "toolbench")
    assert len(tools) == 817
    return tools


@pytest.fixture(scope="session")
def toolbench_call_requests(toolbench_tools):
    """The backends' acceptance workload: 200 seeded requests over call schemas of a seeded sample
    of the ToolBench tools, each with its tool shown. Returns (tools, call schemas, requests)."""
    import random

    from imaginarium.generators.backend import Constraint, GenerationRequest
    from imaginarium.schemas.constraints import call_schema

    picked = random.Random(0).sample(toolbench_tools, 200)
    schemas = [call_schema(tool) for tool in picked]
    requests = [
        GenerationRequest(messages=[{"role": "user", "content": f"Use {tool.name} for me."}],
                          tools=[tool.openai_tool()], constraint=Constraint.json(schema), seed=index, max_tokens=160)
        for index, (tool, schema) in enumerate(zip(picked, schemas))
    ]
    return picked, schemas, requests


@pytest.fixture
def run(capsys, monkeypatch):
    """Run `imaginarium ARGS...` in-process through the real entry point: (exit code, stdout, stderr)."""
    import sys

    from imaginarium.cli import main

    def invoke(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["imaginarium", *map(str, args)])
        monkeypatch.setenv("COLUMNS", "200")
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
