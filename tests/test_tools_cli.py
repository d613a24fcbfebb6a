"""The `imaginarium tools` commands, run through the real entry point (`imaginarium.cli.main`,
which turns InputError into one line on stderr and exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from paths import TOOLBENCH as STE_DESCRIPTIONS

from imaginarium.schemas.toolspec import read_tools

DATA = Path(__file__).parent / "data" / "importers"
OPENAI_FILE = DATA / "openai_weather_calendar.json"
MCP_FILE = DATA / "mcp_filesystem_tools_list.json"




@pytest.mark.skipif(not STE_DESCRIPTIONS.is_file(), reason="STE reference data not present")
def test_import_all_ste_apis(run, tmp_path):
    out = tmp_path / "t.jsonl"
    code, stdout, _ = run("tools", "import", STE_DESCRIPTIONS, "--format", "toolbench", "-o", out)
    assert code == 0
    assert f"   817 tools  {STE_DESCRIPTIONS}" in stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 817
    for line in lines:
        jsonschema.Draft202012Validator.check_schema(json.loads(line)["parameters"])


def test_import_several_files_summarises_per_file(run, tmp_path):
    out = tmp_path / "tools.jsonl"
    code, stdout, _ = run("tools", "import", OPENAI_FILE, MCP_FILE, "-o", out)
    assert code == 0
    assert f"     4 tools  {OPENAI_FILE}" in stdout and f"     6 tools  {MCP_FILE}" in stdout
    assert "wrote 10 tools" in stdout
    assert [tool.source.format for tool in read_tools(out)] == ["openai"] * 4 + ["mcp"] * 6


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Broken files, each with the text its error line must contain."""
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[\n  {"name": "a",\n   "description": oops}\n]\n')
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("tools:\n  - name: a\n    description: [unclosed\n  - name: b\n")
    unknown = tmp_path / "notes.yaml"
    unknown.write_text("shopping: [milk, eggs]\n")
    bad_schema = tmp_path / "bad_schema.json"
    bad_schema.write_text(json.dumps([{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer", "minimum": "zero"}}}}]))
    duplicate = tmp_path / "dup.json"
    duplicate.write_text(json.dumps([{"name": "get-weather", "description": "a"}, {"name": "get-weather", "description": "b"}]))
    return {
        "invalid JSON": (bad_json, f"{bad_json}:3:19: invalid JSON"),
        "invalid YAML": (bad_yaml, f"{bad_yaml}:4:9: invalid YAML"),
        "unknown format": (unknown, f"{unknown}: unknown format"),
        "invalid schema": (bad_schema, f"{bad_schema}#/0/parameters: parameters: invalid JSON Schema at properties/x/minimum"),
        "duplicate name": (duplicate, f"{duplicate}#/1: duplicate tool name 'get-weather' (also at {duplicate}#/0)"),
        "missing file": (tmp_path / "absent.json", f"{tmp_path / 'absent.json'}: no such file"),
    }


@pytest.mark.parametrize("case", ["invalid JSON", "invalid YAML", "unknown format", "invalid schema", "duplicate name", "missing file"])
def test_bad_input_exits_2_and_writes_nothing(run, tmp_path, case):
    bad, expected = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out" / "tools.jsonl"
    code, _, stderr = run("tools", "import", OPENAI_FILE, bad, "-o", out)
    assert code == 2
    assert stderr.startswith(f"error: {expected}") and stderr.count("\n") == 1  # one line
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_unknown_format_option_is_a_usage_error(run, tmp_path):
    out = tmp_path / "tools.jsonl"
    code, _, stderr = run("tools", "import", OPENAI_FILE, "--format", "swagger2", "-o", out)
    assert code == 2 and "'swagger2' is not one of" in stderr
    assert not out.exists()


def test_wrong_explicit_format_names_the_file(run, tmp_path):
    out = tmp_path / "tools.jsonl"
    code, _, stderr = run("tools", "import", OPENAI_FILE, "--format", "mcp", "-o", out)
    assert code == 2 and stderr == f"error: {OPENAI_FILE}: not a mcp document, as --format mcp says; it looks like openai\n"
    assert not out.exists()


def test_skip_invalid_with_nothing_left_fails(run, tmp_path):
    bad, _ = _bad_inputs(tmp_path)["invalid JSON"]
    out = tmp_path / "tools.jsonl"
    code, _, stderr = run("tools", "import", bad, "--skip-invalid", "-o", out)
    assert code == 2
    assert stderr.splitlines() == [f"skipped {bad}:3:19: invalid JSON: Expecting value",
                                   f"error: {out}: no tools to write (1 skipped; the first: {bad}:3:19: invalid JSON: Expecting value)"]
    assert not out.exists()


def test_skip_invalid_writes_the_good_and_reports_every_skipped(run, tmp_path):
    bad = _bad_inputs(tmp_path)
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([{"name": "ok", "description": "fine"}, {"description": "no name"}, {"name": "bad", "parameters": {"type": "nope"}}]))
    out = tmp_path / "tools.jsonl"
    sources = [OPENAI_FILE, mixed, *(path for path, _ in bad.values())]
    code, stdout, stderr = run("tools", "import", *sources, "--skip-invalid", "-o", out)
    assert code == 0
    written = read_tools(out)
    # The good tools: the 4 OpenAI ones, `ok`, and the first get-weather (the second is the duplicate).
    assert [tool.name for tool in written][-2:] == ["ok", "get-weather"] and len(written) == 6
    reported = stderr.splitlines()
    assert reported[:2] == [
        f"skipped {mixed}#/1/name: missing or empty 'name'",
        f"skipped {mixed}#/2/parameters: parameters: must be a JSON Schema with type 'object'",
    ]
    for case, (_, expected) in bad.items():
        assert any(line.startswith(f"skipped {expected}") for line in reported), case
    assert len(reported) == 2 + len(bad)
    assert "wrote 6 tools" in stdout and f"({len(reported)} skipped)" in stdout


def test_validate_ok_lists_unenforced_keywords(run, tmp_path):
    from imaginarium.schemas.constraints import unenforced_keywords

    out = tmp_path / "tools.jsonl"
    assert run("tools", "import", OPENAI_FILE, MCP_FILE, "-o", out)[0] == 0
    code, stdout, _ = run("tools", "validate", out)
    assert code == 0  # warnings do not fail the file
    *warnings, last = stdout.splitlines()
    assert last == f"{out}: 10 tools valid"
    expected = [f"warning: {tool.name} {keyword}" for tool in read_tools(out) for keyword in unenforced_keywords(tool.parameters)]
    assert warnings == expected
    # get_forecast's integer bounds (days: 1..14) are beyond outlines_core: one line each.
    assert "warning: get_forecast /properties/days: minimum" in "\n".join(warnings)


def test_validate_rejects_a_bad_line(run, tmp_path):
    out = tmp_path / "tools.jsonl"
    assert run("tools", "import", OPENAI_FILE, "-o", out)[0] == 0
    lines = out.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["parameters"]["properties"]["days"]["minimum"] = "one"
    out.write_text("\n".join([lines[0], json.dumps(broken), *lines[2:]]) + "\n")
    code, _, stderr = run("tools", "validate", out)
    assert code == 2
    assert stderr.startswith(f"error: {out}:2: field parameters:") and "properties/days/minimum" in stderr


def test_show_table_and_one_tool(run, tmp_path):
    out = tmp_path / "tools.jsonl"
    assert run("tools", "import", MCP_FILE, "-o", out)[0] == 0
    code, stdout, _ = run("tools", "show", out)
    assert code == 0
    assert "6 tools" in stdout and "list_allowed_directories" in stdout and "path, edits" in stdout
    code, stdout, _ = run("tools", "show", out, "get_file_info")
    assert code == 0
    shown = json.loads(stdout)
    assert shown["returns"]["required"] == ["size", "isDirectory"] and shown["source"]["format"] == "mcp"
    code, _, stderr = run("tools", "show", out, "no_such_tool")
    assert code == 2 and stderr.strip() == f"error: {out}: no tool named 'no_such_tool'"


def test_show_finds_a_tool_by_source_name(run, tmp_path):
    source = tmp_path / "f.json"
    source.write_text(json.dumps([{"name": "Weather%%Now", "description": "Current weather."}]))
    out = tmp_path / "tools.jsonl"
    assert run("tools", "import", source, "-o", out)[0] == 0
    code, stdout, _ = run("tools", "show", out, "Weather%%Now")
    assert code == 0 and json.loads(stdout)["source_name"] == "Weather%%Now"


def test_help_through_the_installed_command():
    command = Path(sys.executable).with_name("imaginarium")
    top = subprocess.run([command, "--help"], capture_output=True, text=True, check=True).stdout
    assert "tools" in top.split("Commands:")[1]
    helped = subprocess.run([command, "tools", "import", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--skip-invalid" in helped and "Example:" in helped
