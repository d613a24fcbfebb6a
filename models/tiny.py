"""The embedded tiny model: a random-weight Llama built locally in about a second.

Tests and the quickstart need a real causal LM with a real tokenizer and chat template, and
the Hugging Face Hub is not always reachable. This model's text is meaningless, but its
constrained outputs are valid, which is all the pipeline's tests need. Any HF model id or
local path can replace it.

Choices, each for a reason:
- byte-level BPE trained here on a small built-in corpus, with all 256 bytes in the initial
  alphabet, so any text (any JSON string, any regex match) can be produced;
- exactly one special token (`<|end|>`, serving as bos, eos and pad): extra special tokens can
  leak into constrained strings when a grammar engine treats them as text;
- a Jinja chat template that renders `tools` as a system block of JSON definitions, and
  assistant `tool_calls` and `tool` messages, so tool-use prompts render like a real model's.

Everything is derived from the seed: the same seed gives byte-identical weights and tokenizer.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

from imaginarium.errors import InputError

END_TOKEN = "<|end|>"
VOCAB_SIZE = 512

# Each message renders as "<|role|>\n" + content (+ tool calls) + "<|end|>\n". Role markers are
# plain text (not special tokens) on purpose: one special token only.
CHAT_TEMPLATE = """\
{%- if tools %}
{{- '<|system|>\\nYou can call these tools. Answer with <call>{\"name\": ..., \"arguments\": {...}}</call>.\\n' }}
{%- for tool in tools %}
{{- (tool.function if tool.function is defined else tool) | tojson }}{{ '\\n' }}
{%- endfor %}
{{- '<|end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'tool' %}
{{- '<|tool|>' + (message.name if message.name is defined and message.name else '') + '\\n' }}
{%- else %}
{{- '<|' + message.role + '|>\\n' }}
{%- endif %}
{%- if message.content is string %}{{ message.content }}{% elif message.content %}{{ message.content | tojson }}{% endif %}
{%- if message.tool_calls %}
{%- for call in message.tool_calls %}
{%- set fn = call.function if call.function is defined else call %}
{{- '<call>{\"name\": ' + (fn.name | tojson) + ', \"arguments\": ' }}
{%- if fn.arguments is string %}{{ fn.arguments }}{% else %}{{ fn.arguments | tojson }}{% endif %}
{{- '}</call>' }}
{%- endfor %}
{%- endif %}
{{- '<|end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}
"""

# A small corpus so that BPE learns merges typical of the text the model sees: chat markers,
# JSON punctuation, tool-call syntax, English words and digits.
_CORPUS = [
    '<|system|>\nYou can call these tools. Answer with <call>{"name": ..., "arguments": {...}}</call>.\n',
    '<|user|>\nWhat is the weather in Paris tomorrow?<|end|>\n<|assistant|>\n',
    '<call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 1}}</call><|end|>\n',
    '<|tool|>get_weather\n{"temperature": 21.5, "unit": "celsius", "condition": "sunny"}<|end|>\n',
    '{"type": "object", "properties": {"query": {"type": "string", "description": "search text"}}, '
    '"required": ["query"], "additionalProperties": false}',
    '{"name": "search_news", "description": "Search recent news articles by keyword and language.", '
    '"parameters": {"type": "object", "properties": {"keyword": {"type": "string"}, '
    '"language": {"type": "string", "enum": ["en", "fr", "de"]}, "limit": {"type": "integer", '
    '"minimum": 1, "maximum": 50}}}}',
    "The quick brown fox jumps over the lazy dog. Tools return results; the assistant answers the user.",
    "true false null 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14 -1 0.5 1e3",
    "Find the stock price of AAPL, convert 100 USD to EUR, list the top movies of the year, "
    "translate hello into Spanish, and tell me a joke about cats.",
    "id name date time city country email phone url page size limit offset sort order "
    "start end from to query text value amount currency language category type status",
]


def build_tiny_model(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Build the tiny model and tokenizer deterministically from `seed`; save them to `out_dir`.

    Returns the directory, loadable with AutoModelForCausalLM / AutoTokenizer.from_pretrained.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", where=str(out))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(),
        bos_token=END_TOKEN,
        eos_token=END_TOKEN,
        pad_token=END_TOKEN,
        padding_side="left",
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    end_id = int(tokenizer.convert_tokens_to_ids(END_TOKEN))  # type: ignore[arg-type]  # one token: one id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=end_id,
        eos_token_id=end_id,
        pad_token_id=end_id,
        tie_word_embeddings=True,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.pad_token_id = end_id
    model.generation_config.eos_token_id = end_id
    model.generation_config.bos_token_id = end_id
    # Written beside the target, then moved in: an interrupted build leaves no half-written model.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        out.mkdir(exist_ok=True)
        for path in sorted(staging.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _train_tokenizer():
    """A byte-level BPE trained on the built-in corpus; deterministic, all bytes covered."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[END_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer


_cache_lock = threading.Lock()
_cache: dict[int, Path] = {}


def tiny_model_path(seed: int = 0) -> Path:
    """The tiny model for `seed`, built once per process into a temporary directory (removed at exit)."""
    with _cache_lock:
        if seed not in _cache:
            root = Path(tempfile.mkdtemp(prefix="imaginarium-tiny-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _cache[seed] = build_tiny_model(root / f"tiny-{seed}", seed=seed)
        return _cache[seed]
