"""The embedded tiny model: deterministic, loadable by transformers, any text encodable."""

from __future__ import annotations

import json

from imaginarium.models.tiny import END_TOKEN, build_tiny_model, tiny_model_path


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path, tiny_model):
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_model / name).read_bytes(), name
    assert (other / "model.safetensors").read_bytes() != (tiny_model / "model.safetensors").read_bytes()


def test_loads_as_llama_with_one_special_token(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.all_special_tokens == [END_TOKEN]
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.bos_token == END_TOKEN
    assert tokenizer.padding_side == "left"


def test_any_text_round_trips(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    text = 'naïve 漢字 🙂 \x00\x7f {"k": [1, -2.5e3]} \t\r\n' + "".join(chr(c) for c in range(32, 127))
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.convert_tokens_to_ids(END_TOKEN) not in ids


def test_chat_template_renders_tools_tool_calls_and_tool_messages(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
        },
        {"role": "tool", "name": "get_weather", "content": '{"temp": 21}'},
    ]
    text = tokenizer.apply_chat_template(messages, tools=[tool], add_generation_prompt=True, tokenize=False)
    assert json.dumps(tool["function"]) in text
    assert '<call>{"name": "get_weather", "arguments": {"city": "Paris"}}</call>' in text
    assert '<|tool|>get_weather\n{"temp": 21}' in text
    assert text.index("Weather in Paris?") < text.index('<call>{"name": "get_weather"') < text.index('{"temp": 21}')
    assert text.endswith("<|assistant|>\n")
    no_tools = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=False, tokenize=False)
    assert no_tools == "<|user|>\nWeather in Paris?<|end|>\n"


def test_tiny_model_path_builds_once_per_process():
    assert tiny_model_path(0) == tiny_model_path(0)
    assert (tiny_model_path(0) / "config.json").exists()


def test_output_path_that_is_a_file_is_an_input_error(tmp_path):
    import pytest

    from imaginarium.errors import InputError

    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        build_tiny_model(tmp_path / "f")


def test_build_leaves_only_the_model_files(tmp_path):
    build_tiny_model(tmp_path / "m", seed=2)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in (tmp_path / "m").iterdir()}
