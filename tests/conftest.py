"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # torch on CPU: skip ~10 s of compiling


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of the embedded tiny model (seed 0), built once per test session."""
    from imaginarium.models.tiny import build_tiny_model

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

    from imaginarium.models.backend import Constraint, GenerationRequest
    from imaginarium.schemas.constraints import call_schema

    picked = random.Random(0).sample(toolbench_tools, 200)
    schemas = [call_schema(tool) for tool in picked]
    requests = [
        GenerationRequest(messages=[{"role": "user", "content": f"Use {tool.name} for me."}],
                          tools=[tool.openai_tool()], constraint=Constraint.json(schema), seed=index, max_tokens=160)
        for index, (tool, schema) in enumerate(zip(picked, schemas))
    ]
    return picked, schemas, requests


@pytest.fixture(scope="session")
def choice_and_regex_requests(toolbench_tools):
    """200 seeded choice requests (5 ToolBench names each, as chat) and 200 regex requests (raw
    prompts), with `check(completion)` asserting a valid completion matches its constraint."""
    import random
    import re

    from imaginarium.models.backend import Constraint, GenerationRequest

    rng = random.Random(1)
    patterns = [r"[0-9]{4}-[0-9]{2}-[0-9]{2}", r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8})?",
                r"(GET|POST) /[a-z]{1,10}(/[0-9]{1,4})?", r"-?[0-9]{1,6}\.[0-9]{2}"]
    choices = [[tool.name for tool in rng.sample(toolbench_tools, 5)] for _ in range(200)]
    requests = [
        GenerationRequest(messages=[{"role": "user", "content": f"Pick one of {', '.join(options)}."}],
                          constraint=Constraint.choice(options), seed=i, max_tokens=60)
        for i, options in enumerate(choices)
    ] + [
        GenerationRequest(prompt="Value:", constraint=Constraint.regex(patterns[i % 4]), seed=i, max_tokens=40)
        for i in range(200)
    ]

    def check(completion):
        if completion.request_index < 200:
            assert completion.value in choices[completion.request_index] and completion.text == completion.value
        else:
            assert re.fullmatch(patterns[completion.request_index % 4], completion.value)
            assert completion.text == completion.value

    return requests, check


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
