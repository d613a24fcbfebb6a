"""`imaginarium generate` and `imaginarium model tiny`, run in-process through the real entry point."""

from __future__ import annotations

import json
import re
import sys

import pytest

from imaginarium.cli import main


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["imaginarium", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_model_tiny_builds_a_loadable_model(monkeypatch, capsys, tmp_path):
    code, out, _ = run_cli(monkeypatch, capsys, "model", "tiny", "-o", str(tmp_path / "m"), "--seed", "3")
    assert code == 0 and out.strip() == str(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists() and (tmp_path / "m" / "tokenizer.json").exists()


def test_generate_choice_prints_one_json_object_per_sample(monkeypatch, capsys, tiny_model):
    code, out, _ = run_cli(monkeypatch, capsys, "generate", "--model", str(tiny_model), "--choice", "yes,no", "--n", "5", "--seed", "1")
    assert code == 0
    results = lines(out)
    assert len(results) == 5
    for result in results:
        assert set(result) == {"text", "value", "finish_reason"}
        assert result["finish_reason"] == "stop" and result["value"] in ("yes", "no") and result["text"] == result["value"]
    _, again, _ = run_cli(monkeypatch, capsys, "generate", "--model", str(tiny_model), "--choice", "yes,no", "--n", "5", "--seed", "1")
    assert again == out


def test_generate_schema_and_regex(monkeypatch, capsys, tiny_model, tmp_path):
    import jsonschema

    schema = {"type": "object", "properties": {"q": {"type": "string", "maxLength": 6}, "k": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["q", "k"]}
    (tmp_path / "s.json").write_text(json.dumps(schema))
    code, out, _ = run_cli(monkeypatch, capsys, "generate", "--model", str(tiny_model), "--schema", str(tmp_path / "s.json"), "--n", "4", "--max-tokens", "40")
    assert code == 0
    results = lines(out)
    assert len(results) == 4 and any(r["finish_reason"] == "stop" for r in results)
    for result in results:
        if result["finish_reason"] == "stop":
            jsonschema.validate(result["value"], schema)
        else:
            assert result["finish_reason"] == "length" and result["value"] is None
    code, out, _ = run_cli(monkeypatch, capsys, "generate", "--model", str(tiny_model), "--regex", "[a-c]{3}", "--n", "2")
    assert code == 0 and all(re.fullmatch("[a-c]{3}", r["value"]) for r in lines(out))


def test_generate_without_constraint_respects_max_tokens(monkeypatch, capsys, tiny_model):
    code, out, _ = run_cli(monkeypatch, capsys, "generate", "--model", str(tiny_model), "--n", "2", "--max-tokens", "4", "--prompt", "Hello")
    assert code == 0
    for result in lines(out):
        assert result["value"] is None and result["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--schema", "missing.json"], "--schema: no such file or directory (got 'missing.json')"),
        (["--regex", "("], "--regex: invalid regex"),
        (["--choice", " , "], "--choice: list should have at least 1 item"),
        (["--choice", "a", "--regex", "a"], "at most one of"),
        (["--n", "0"], "--n: must be greater than or equal to 1 (got 0)"),
        (["--model", "tiny:x"], "seed must be a non-negative integer"),
        (["--backend", "openai", "--model", "m"], "the openai backend needs --base-url"),
        (["--base-url", "http://127.0.0.1:1/v1"], "--base-url is for the openai backend, not transformers"),
        (["--backend", "openai", "--base-url", "http://127.0.0.1:1/v1", "--structured-backend", "xgrammar"],
         "--structured-backend is for the transformers backend, not openai"),
        (["--temperature", "-3"], "--temperature: must be greater than or equal to 0 (got -3.0)"),
        (["--max-tokens", "0"], "--max-tokens: must be greater than or equal to 1 (got 0)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "generate", *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_bad_schema_file_names_the_file(monkeypatch, capsys, tmp_path):
    (tmp_path / "bad.json").write_text('{"type": 5}')
    (tmp_path / "broken.json").write_text("{nope")
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--schema", str(tmp_path / "bad.json"))
    assert code == 2 and "bad.json: invalid JSON Schema" in err
    code, _, err = run_cli(monkeypatch, capsys, "generate", "--schema", str(tmp_path / "broken.json"))
    assert code == 2 and "broken.json: not a JSON Schema file" in err


def test_generate_through_a_local_openai_compatible_server(monkeypatch, capsys, tiny_model):
    """`--backend openai` end to end: a real HTTP server on 127.0.0.1 serving the tiny model."""
    from openai_server import OpenAITestServer

    from imaginarium.models.transformers import TransformersBackend

    with OpenAITestServer(TransformersBackend(str(tiny_model))) as server:
        code, out, err = run_cli(
            monkeypatch, capsys, "generate", "--backend", "openai", "--base-url", server.base_url,
            "--model", "tiny", "--choice", "red,green,blue", "--n", "3",
        )
    assert code == 0, err
    results = lines(out)
    assert len(results) == 3
    assert all(r["finish_reason"] == "stop" and r["value"] in ("red", "green", "blue") for r in results)
