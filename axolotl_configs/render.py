"""Render an Axolotl config from a template, pinned to one release of an imaginarium dataset.

Why: users fine-tune with Axolotl, and a config that Axolotl silently misreads is worse than
none. Rendering therefore (1) pins the dataset to a version (`revision: vX.Y.Z` on the Hub; the
release's version and content hashes in the header for a local release directory), and (2) picks
a chat template that really renders `tools` and `tool_calls`: the base model's own when it does
(checked by rendering a sample conversation), else a named Axolotl template known to; a template
known to drop them (Axolotl's `chatml`, among others) is refused.

    render_config(dataset, template, base_model, ...) -> dict     the config as data
    write_config(config, out, header)                              atomic YAML write
    render_continual(dataset, base_model, configs, out_dir, ...)   one config per round
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from imaginarium.atomic import atomic_write_text
from imaginarium.errors import InputError

TEMPLATES = ("sft-lora", "sft-qlora", "sft-full", "dpo", "continual")
SFT_TEMPLATES = ("sft-lora", "sft-qlora", "sft-full", "continual")
DEFAULT_SFT_CONFIG = "sft"
DEFAULT_DPO_CONFIG = "preference_text"  # rendered-text pairs (preference_text.py), see dpo.yml

# Axolotl 0.19.0's named chat templates (utils/chat_templates/templates/*.jinja) whose Jinja
# renders both the `tools` list and assistant `tool_calls`; every other named template drops
# one or both without an error (chatml, llama3, gemma, phi_*, mistral_v1, ...).
TOOL_TEMPLATES = frozenset({
    "command_a", "command_a_rag", "command_a_tool_use", "exaone4", "gemma4", "gemma4_unified", "jamba",
    "llama3_2_vision", "llama4", "mistral_v2v3", "mistral_v3_tekken", "qwen3", "qwen3_5", "qwen_25",
})
DROPS_TOOLS = frozenset({
    "alpaca", "aya", "chatml", "cohere", "deepseek_v2", "deepseek_v3", "exaone", "falcon_h1", "gemma", "gemma3",
    "gemma3n", "llama3", "llava", "metharme", "mistral_v1", "mistral_v7_tekken", "nemotron_h", "phi_3", "phi_35",
    "phi_4", "pixtral", "qwen2_vl",
})

# On CPU Axolotl picks fp16 unless told otherwise (and fails), and its LoRA kernels need Triton.
CPU_SETTINGS = {
    "bf16": False, "fp16": False, "tf32": False,
    "lora_mlp_kernel": False, "lora_qkv_kernel": False, "lora_o_kernel": False,
}

_HUB_SPEC = re.compile(r"(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)@(?P<revision>v\d+\.\d+\.\d+)")

# A conversation with one tool, one call and its response: a chat template that renders tools
# shows the tool's description, the call's name and the response.
_PROBE_TOOL = {"type": "function", "function": {
    "name": "probe_lookup_weather", "description": "Probe tool: weather by city (imaginarium)",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
_PROBE_MESSAGES = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function", "function": {
        "name": "probe_lookup_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "content": "{\"probe_temp\": 7}", "tool_call_id": "call_0", "name": "probe_lookup_weather"},
    {"role": "assistant", "content": "It is 7 degrees."},
]
_PROBE_EXPECT = {
    "the tool list": "Probe tool: weather by city",
    "the assistant's tool call": "probe_lookup_weather",
    "the tool response": "probe_temp",
}


@dataclass(frozen=True)
class DatasetRef:
    """Where the release is: a Hub repo at a tag, or a local release directory."""

    path: str
    revision: str | None = None
    release: dict[str, Any] | None = None  # release.json of a local release directory

    @property
    def local(self) -> bool:
        return self.release is not None


def parse_dataset(spec: str) -> DatasetRef:
    """`OWNER/NAME@vX.Y.Z` (a published release) or a release directory built by `release build`."""
    path = Path(spec)
    if path.is_dir():
        from imaginarium.hub_cards.release import read_release

        return DatasetRef(str(path.resolve()), None, read_release(path))
    match = _HUB_SPEC.fullmatch(spec)
    if match is None:
        raise InputError("must be OWNER/NAME@vX.Y.Z (a published release) or a release directory", where=f"--dataset {spec}")
    return DatasetRef(match["repo"], match["revision"])


def load_template(name: str) -> dict[str, Any]:
    """The template's settings (axolotl_configs/templates/NAME.yml) as a dict."""
    if name not in TEMPLATES:
        raise InputError(f"unknown template {name!r}; known: {', '.join(TEMPLATES)}", where="--template")
    text = resources.files("imaginarium.axolotl_configs").joinpath("templates", f"{name}.yml").read_text("utf-8")
    return yaml.safe_load(text)


def probe_chat_template(template: str) -> list[str]:
    """What a chat template leaves out of a conversation with tools (empty: it renders them all)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered, _ = render_jinja_template(conversations=[_PROBE_MESSAGES], tools=[_PROBE_TOOL],  # type: ignore[list-item,str-unpack]
                                            chat_template=template, bos_token="", eos_token="")
        text = rendered[0]
    except Exception as exc:  # a template that cannot render a tool conversation drops it too
        return [f"everything (rendering failed: {exc})"]
    return [what for what, needle in _PROBE_EXPECT.items() if needle not in text]


def base_model_chat_template(base_model: str) -> str | None:
    """The base model's own chat template, read offline; None when it has none or is not local."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    except (OSError, ValueError):
        return None
    template = tokenizer.chat_template
    return template if isinstance(template, str) else None


def resolve_chat_template(base_model: str, chat_template: str | None = None) -> dict[str, Any]:
    """The config's chat template settings; refuses a template that drops tools or tool calls.

    `chat_template`: None (the base model's own, which must render tools), `tokenizer_default`
    (the same, explicitly), a named Axolotl template, or a path to a .jinja file.
    """
    where = "--chat-template"
    if chat_template in DROPS_TOOLS:
        raise InputError(f"Axolotl's {chat_template!r} template drops tools and tool calls without an error; "
                         f"use the base model's own or one of: {', '.join(sorted(TOOL_TEMPLATES))}", where=where)
    if chat_template in TOOL_TEMPLATES:
        return {"chat_template": chat_template}
    if chat_template not in (None, "tokenizer_default"):
        path = Path(chat_template)
        if not path.is_file():
            raise InputError(f"{chat_template!r} is neither a named Axolotl template that renders tools "
                             f"({', '.join(sorted(TOOL_TEMPLATES))}) nor a .jinja file", where=where)
        text = path.read_text(encoding="utf-8")
        missing = probe_chat_template(text)
        if missing:
            raise InputError(f"this chat template drops {', '.join(missing)}", where=str(path))
        return {"chat_template": "jinja", "chat_template_jinja": text}
    own = base_model_chat_template(base_model)
    if own is None:
        raise InputError(f"cannot read the chat template of {base_model!r} offline (no local tokenizer with one); "
                         f"pass --chat-template with one of: {', '.join(sorted(TOOL_TEMPLATES))}", where="--base-model")
    missing = probe_chat_template(own)
    if missing:
        raise InputError(f"the chat template of {base_model!r} drops {', '.join(missing)}; pass --chat-template "
                         f"with one of: {', '.join(sorted(TOOL_TEMPLATES))}", where="--base-model")
    return {"chat_template": "tokenizer_default"}


def _config_columns(dataset: DatasetRef, config: str) -> dict[str, str]:
    """Column name -> Arrow type (as text) of one config of a local release."""
    import pyarrow.parquet as pq

    info = dataset.release["configs"].get(config) if dataset.release else None
    if info is None:
        known = ", ".join(sorted(dataset.release["configs"])) if dataset.release else ""
        raise InputError(f"the release has no config {config!r}; it has: {known}", where=f"--config {config}")
    first = next(iter(info["splits"].values()))["files"][0]
    schema = pq.read_schema(Path(dataset.path) / first)
    return {field.name: str(field.type) for field in schema}


def dataset_entry(dataset: DatasetRef, template: str, config: str) -> dict[str, Any]:
    """The `datasets:` entry for one config of the release, pinned to its revision."""
    if dataset.local:
        columns = _config_columns(dataset, config)
        if template in SFT_TEMPLATES and not {"messages", "tools"} <= set(columns):
            raise InputError("needs chat rows with `messages` and `tools` (sft_row)", where=f"--config {config}")
        if template == "dpo" and any(columns.get(c) != "string" for c in ("prompt", "chosen", "rejected")):
            raise InputError("the dpo template needs text rows (prompt, chosen, rejected as strings): Axolotl's "
                             "DPO chat_template loader drops tools; render preference rows with "
                             "imaginarium.builders.preference_text first", where=f"--config {config}")
    if template == "dpo":
        # Axolotl's DPO dataset entry has no `name`: point at the config's files instead.
        entry: dict[str, Any]
        if dataset.local:
            entry = {"path": str(Path(dataset.path) / "data" / config), "split": "train"}
        else:
            entry = {"path": dataset.path, "revision": dataset.revision,
                     "data_files": [f"data/{config}/train-*.parquet"], "split": "train"}
        return {**entry, "type": "passthrough"}
    entry = {"path": dataset.path, "name": config, "split": "train"}
    if dataset.revision:
        entry["revision"] = dataset.revision
    return {**entry, "type": "chat_template", "field_messages": "messages", "field_tools": "tools",
            "roles_to_train": ["assistant"], "train_on_eos": "turn"}


def apply_overrides(config: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """`key=value` settings (value read as YAML; `a.b=value` sets a nested key)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError("must be KEY=VALUE", where=f"--set {item}")
        *parents, leaf = key.split(".")
        target = config
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise InputError(f"{part!r} is not a mapping", where=f"--set {item}")
        target[leaf] = _yaml_value(value)
    return config


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _yaml_value(text: str) -> Any:
    """A value read as YAML, the way a person means it: only true/false are booleans (YAML 1.1
    reads `no` as false) and `1e-4` is a number (YAML 1.1 reads it as text)."""
    if _FLOAT.fullmatch(text.strip()):
        return float(text)
    value = yaml.safe_load(text)
    if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
        return text
    return value


def render_config(dataset: str | DatasetRef, template: str, base_model: str, *, config: str | None = None,
                  chat_template: str | None = None, overrides: Sequence[str] = (), cpu: bool = False,
                  chat_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Axolotl config for `template` on one config of the release, as data.

    `cpu`: settings that Axolotl needs to train on CPU (no fp16/bf16/tf32, no Triton LoRA kernels).
    `chat_settings`: already resolved chat template settings (continual rounds reuse round 1's).
    """
    ref = dataset if isinstance(dataset, DatasetRef) else parse_dataset(dataset)
    settings = load_template(template)
    config = config or (DEFAULT_DPO_CONFIG if template == "dpo" else DEFAULT_SFT_CONFIG)
    rendered: dict[str, Any] = {"base_model": base_model}
    rendered.update(chat_settings if chat_settings is not None else resolve_chat_template(base_model, chat_template))
    rendered["datasets"] = [dataset_entry(ref, template, config)]
    rendered["dataset_prepared_path"] = "./outputs/prepared"
    rendered.update(settings)
    if cpu:
        rendered.update(CPU_SETTINGS)
    return apply_overrides(rendered, overrides)


def header(dataset: str | DatasetRef, template: str) -> str:
    """Comment lines naming the template and the exact release the config is pinned to."""
    ref = dataset if isinstance(dataset, DatasetRef) else parse_dataset(dataset)
    lines = [f"# Rendered by `imaginarium train render` from the {template} template."]
    if ref.local:
        release = ref.release or {}
        lines.append(f"# Dataset: release directory {ref.path}, {release['name']} v{release['version']}")
        for name, info in sorted(release["configs"].items()):
            lines.append(f"#   config {name}: {info['rows']} rows, content hash {info.get('content_hash')}")
    else:
        lines.append(f"# Dataset: {ref.path} at revision {ref.revision} (a tag: it never moves)")
    return "\n".join(lines) + "\n"


def write_config(config: dict[str, Any], out: str | Path, head: str = "") -> Path:
    """Write the config as YAML (atomically: no half-written file on failure)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return out


def render_continual(dataset: str, base_model: str, configs: Sequence[str], out_dir: str | Path, *,
                     chat_template: str | None = None, overrides: Sequence[str] = (), cpu: bool = False,
                     output_root: str = "./outputs/continual") -> list[Path]:
    """One config per round (`out_dir/round-K.yml`); round K starts from round K-1's output model."""
    if not configs:
        raise InputError("give the rounds' dataset configs in order (--config round-1 --config round-2 ...)", where="--config")
    ref = parse_dataset(dataset)
    chat_settings = resolve_chat_template(base_model, chat_template)
    written, previous = [], base_model
    for number, name in enumerate(configs, start=1):
        output_dir = f"{output_root}/round-{number}"
        rendered = render_config(ref, "continual", previous, config=name, overrides=overrides, cpu=cpu,
                                 chat_settings=chat_settings)
        rendered["output_dir"] = output_dir
        head = header(ref, "continual") + f"# Round {number} of {len(configs)}: starts from {previous}\n"
        written.append(write_config(rendered, Path(out_dir) / f"round-{number}.yml", head))
        previous = output_dir
    return written
