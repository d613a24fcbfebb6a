"""Check an Axolotl config with Axolotl's own code; runs INSIDE the Axolotl environment.

    .venv-axolotl/bin/python axolotl_check_script.py CONFIG.yml [--rows N] [--json REPORT.json]

Why a separate script: Axolotl pins other versions of transformers, datasets and friends than
imaginarium, so it lives in its own virtualenv and imaginarium talks to it only through this
script (imaginarium.axolotl_configs.check runs it and reads the JSON report). It imports Axolotl
and its dependencies only, never imaginarium.

Axolotl is silent in three known places, so each is checked here:
1. unknown keys are ignored: every top-level and dataset key is compared with the fields and
   aliases of Axolotl's config models;
2. validation goes through `axolotl.utils.config.validate_config` with the machine's GPU (or CPU)
   capabilities, which also types each dataset entry by `rl` (the bare pydantic model's union
   would accept a broken SFT entry as a DPO one);
3. templates and loaders that drop tools: Axolotl's preprocessing runs on the first N rows and,
   per row, the trained (unmasked) tokens must hold the assistant's tool calls and final answer
   while the system prompt, the tool list, the user turns and the tool responses are masked (for
   DPO text rows: the prompt keeps the tool list and the chosen completion holds the calls and
   the answer).

Exit code: 0 all good, 1 problems found (see the report), 2 the config could not be read.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

for _key, _value in (("AXOLOTL_DO_NOT_TRACK", "1"), ("HF_HUB_OFFLINE", "1"), ("WANDB_MODE", "disabled"),
                     ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)

PREFERENCE_RL = ("dpo", "ipo", "simpo")


def known_keys(model) -> set[str]:
    """Field names and aliases of a pydantic model: the keys Axolotl reads."""
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                keys.add(alias)
    return keys


def unknown_keys(raw: dict) -> list[str]:
    """Keys of the config (top level and each dataset entry) that Axolotl does not know."""
    from axolotl.cli.config import prepare_plugins
    from axolotl.utils.config import merge_input_args
    from axolotl.utils.dict import DictDefault
    from axolotl.utils.schemas.config import AxolotlConfigWCapabilities
    config_model = AxolotlConfigWCapabilities
    if raw.get("plugins"):
        prepare_plugins(DictDefault(copy.deepcopy(raw)))
        config_model, _ = merge_input_args()
    unknown = sorted(key for key in raw if key not in known_keys(config_model))
    for group in ("datasets", "test_datasets"):
        for index, entry in enumerate(raw.get(group) or []):
            if isinstance(entry, dict):
                fields = known_keys(dataset_model(raw))
                unknown += [f"{group}[{index}].{key}" for key in entry if key not in fields]
    return unknown


def dataset_model(raw: dict):
    """The model validate_config gives each dataset entry, chosen by `rl`."""
    from axolotl.utils.schemas.datasets import DPODataset, KTODataset, SFTDataset

    return DPODataset if raw.get("rl") in PREFERENCE_RL else KTODataset if raw.get("rl") == "kto" else SFTDataset


def _errors(exc, prefix: str = "") -> list[dict]:
    return [{"where": prefix + (".".join(str(p) for p in error["loc"]) or "(config)"), "message": error["msg"]}
            for error in exc.errors()]


def validate(raw: dict) -> tuple[list[dict], dict]:
    """Validation errors from Axolotl's validate_config with this machine's capabilities.

    Each dataset entry is first checked alone with the model validate_config converts it to, so
    an error names its entry (validate_config's own message does not say which one).
    """
    import pydantic
    from axolotl.cli.config import gpu_capabilities, prepare_plugins
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    capabilities, env_capabilities = gpu_capabilities()
    errors = []
    for index, entry in enumerate(raw.get("datasets") or []):
        try:
            dataset_model(raw)(**entry)
        except pydantic.ValidationError as exc:
            errors += _errors(exc, f"datasets[{index}].")
        except TypeError as exc:
            errors.append({"where": f"datasets[{index}]", "message": str(exc)})
    if errors:
        return errors, capabilities
    cfg = DictDefault(copy.deepcopy(raw))
    try:
        prepare_plugins(cfg)
        validate_config(cfg, capabilities=capabilities, env_capabilities=env_capabilities)
    except pydantic.ValidationError as exc:
        return _errors(exc), capabilities
    except (ValueError, TypeError, KeyError) as exc:
        return [{"where": "(config)", "message": str(exc)}], capabilities
    return [], capabilities


# A conversation with one tool, one call and its response, as Axolotl hands it to a chat template
# (arguments and parameters as objects): a template that renders tools shows all three needles.
_PROBE_TOOLS = [{"type": "function", "function": {
    "name": "probe_lookup_weather", "description": "Probe tool: weather by city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
_PROBE_MESSAGES = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function", "function": {
        "name": "probe_lookup_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "content": "{\"probe_temp\": 7}", "tool_call_id": "call_0", "name": "probe_lookup_weather"},
    {"role": "assistant", "content": "It is 7 degrees."},
]
_PROBE_EXPECT = {"the tool list": "Probe tool: weather by city", "the assistant's tool calls": "probe_lookup_weather",
                 "the tool responses": "probe_temp"}


def check_chat_template(cfg) -> list[str]:
    """What the chat template Axolotl will use leaves out of a conversation with tools."""
    from axolotl.loaders import load_tokenizer
    from axolotl.utils.chat_templates import get_chat_template_from_config

    tokenizer = load_tokenizer(cfg)
    template = get_chat_template_from_config(cfg=cfg, ds_cfg=cfg.datasets[0], tokenizer=tokenizer)
    try:
        text = tokenizer.apply_chat_template(_PROBE_MESSAGES, tools=_PROBE_TOOLS, chat_template=template, tokenize=False)
    except Exception as exc:  # a template that cannot render a tool conversation drops it
        return [f"a conversation with tools (rendering failed: {exc})"]
    return [what for what, needle in _PROBE_EXPECT.items() if needle not in text]


def _spans(tokenizer, ids: list[int], keep: list[bool]) -> str:
    """Decode each contiguous run of kept tokens separately, joined by a separator no text holds."""
    runs, current = [], []
    for token, flag in zip(ids, keep):
        if flag:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return "\n\x00\n".join(tokenizer.decode(run) for run in runs)


def _values(arguments) -> list[str]:
    """Each top-level argument value as JSON text (how chat templates render them)."""
    if isinstance(arguments, str):
        arguments = json.loads(arguments)
    return [json.dumps(value, ensure_ascii=False) for value in arguments.values()]


def _tool_descriptions(tools) -> list[str]:
    if isinstance(tools, str):
        tools = json.loads(tools)
    return [t["function"]["description"] for t in tools or [] if t.get("function", {}).get("description")]


def check_sft_row(raw_row: dict, ds_cfg, trained: str, masked: str) -> list[str]:
    """What is wrong with one preprocessed SFT row (empty: calls and answer trained, rest masked)."""
    problems = []
    messages = raw_row[ds_cfg.get("field_messages") or "messages"]
    if isinstance(messages, str):
        messages = json.loads(messages)
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                name = call["function"]["name"]
                if name not in trained:
                    problems.append(f"tool call {name!r} is not trained")
                for value in _values(call["function"]["arguments"]):
                    if value not in trained:
                        problems.append(f"argument {value} of tool call {name!r} is not trained")
        elif content:
            label = {"tool": "tool response", "system": "system prompt", "user": "user turn"}.get(role, role)
            if content in trained:
                problems.append(f"{label} is trained: {content[:60]!r}")
            elif content not in masked:
                problems.append(f"{label} is missing from the input: {content[:60]!r}")
    answers = [m.get("content") for m in messages
               if m.get("role") == "assistant" and not m.get("tool_calls") and m.get("content")]
    if answers and answers[-1] not in trained:
        problems.append(f"final answer is not trained: {answers[-1][:60]!r}")
    for description in _tool_descriptions(raw_row.get(ds_cfg.get("field_tools") or "tools")):
        if description in trained:
            problems.append(f"tool list is trained: {description[:60]!r}")
        elif description not in masked:
            problems.append(f"tool list is missing from the input (dropped by the chat template): {description[:60]!r}")
    return problems


def check_sft(cfg, rows: int) -> list[dict]:
    """Axolotl's SFT preprocessing on the first rows; a report per raw row."""
    from axolotl.common.datasets import load_datasets
    from axolotl.loaders import load_tokenizer
    from axolotl.utils.data.shared import load_dataset_with_config

    ds_cfg = cfg.datasets[0]
    raw_rows = list(load_dataset_with_config(ds_cfg, False))[:rows]
    processed = load_datasets(cfg=cfg).train_dataset
    tokenizer = load_tokenizer(cfg)
    decoded = []
    for item in processed:
        ids, labels = list(item["input_ids"]), list(item["labels"])
        decoded.append((tokenizer.decode(ids), ids, labels))
    reports = []
    for index, raw_row in enumerate(raw_rows):
        messages = raw_row[ds_cfg.get("field_messages") or "messages"]
        users = [m["content"] for m in messages if m.get("role") == "user" and m.get("content")]
        match = next((d for d in decoded if all(u in d[0] for u in users)), None)
        if match is None:
            reports.append({"row": index, "ok": False, "problems": ["row missing after preprocessing (too long?)"]})
            continue
        _, ids, labels = match
        trained = _spans(tokenizer, ids, [label != -100 for label in labels])
        masked = _spans(tokenizer, ids, [label == -100 for label in labels])
        problems = check_sft_row(raw_row, ds_cfg, trained, masked)
        reports.append({"row": index, "ok": not problems, "problems": problems,
                        "tokens": len(ids), "trained_tokens": sum(label != -100 for label in labels)})
    return reports


def check_dpo(cfg, rows: int) -> list[dict]:
    """Axolotl's preference preprocessing on the first rows; TRL trains the completion, not the prompt."""
    from axolotl.common.datasets import load_preference_datasets

    processed = list(load_preference_datasets(cfg=cfg).train_dataset)[:rows]
    reports = []
    for index, row in enumerate(processed):
        problems = []
        prompt, chosen, rejected = row.get("prompt"), row.get("chosen"), row.get("rejected")
        if not all(isinstance(text, str) for text in (prompt, chosen, rejected)):
            problems.append("prompt, chosen and rejected must be text: Axolotl's DPO chat_template loader keeps only "
                            "role and content, so message rows lose their tools")
        elif "tools" not in row or "chosen_calls" not in row:
            problems.append("row has no `tools` / `chosen_calls` columns: cannot prove the tools survived")
        else:
            for description in _tool_descriptions(row["tools"]):
                if description not in prompt:
                    problems.append(f"tool list is missing from the prompt: {description[:60]!r}")
                if description in chosen:
                    problems.append(f"tool list is in the trained completion: {description[:60]!r}")
            for call in json.loads(row["chosen_calls"]):
                if call["name"] not in chosen:
                    problems.append(f"tool call {call['name']!r} is not in the chosen completion")
                for value in _values(call["arguments"]):
                    if value not in chosen:
                        problems.append(f"argument {value} of tool call {call['name']!r} is not in the chosen completion")
            answer = row.get("chosen_answer")
            if answer and answer not in chosen:
                problems.append(f"final answer is not in the chosen completion: {answer[:60]!r}")
            if chosen == rejected:
                problems.append("chosen and rejected are the same text")
        reports.append({"row": index, "ok": not problems, "problems": problems})
    return reports


def preprocess(config_path: Path, raw: dict, rows: int, work: Path) -> tuple[list[str], list[dict]]:
    """Axolotl's own config loading and preprocessing of the first `rows` rows of the first dataset.

    Returns (chat template problems, per-row reports); rows are not preprocessed when the chat
    template drops tools.
    """
    import yaml
    from axolotl.cli.config import load_cfg

    limited = copy.deepcopy(raw)
    entry = limited["datasets"][0]
    entry["split"] = f"{entry.get('split') or 'train'}[:{rows}]"
    limited["datasets"] = [entry]
    limited["dataset_prepared_path"] = str(work / "prepared")
    limited["output_dir"] = str(work / "output")
    path = work / config_path.name
    path.write_text(yaml.safe_dump(limited, sort_keys=False), encoding="utf-8")
    cfg = load_cfg(str(path))
    if raw.get("rl") in PREFERENCE_RL:  # text rows: the chat template is not used
        return [], check_dpo(cfg, rows)
    dropped = check_chat_template(cfg)
    if dropped:
        return [f"the chat template ({raw.get('chat_template')}) drops {what}" for what in dropped], []
    return [], check_sft(cfg, rows)


def run_check(config_path: Path, rows: int) -> dict:
    import axolotl
    import yaml

    raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError("the config is not a YAML mapping")
    report = {"axolotl_version": axolotl.__version__, "config": str(config_path),
              "kind": "dpo" if raw.get("rl") in PREFERENCE_RL else "sft", "unknown_keys": unknown_keys(raw)}
    report["validation_errors"], report["capabilities"] = validate(raw)
    report["rows"], report["chat_template_problems"] = [], []
    if report["kind"] == "dpo":
        report["note"] = ("DPO trains the whole chosen/rejected completion (TRL masks only the prompt), "
                          "including any tool response turns inside it")
    if not report["unknown_keys"] and not report["validation_errors"] and rows > 0:
        with tempfile.TemporaryDirectory(prefix="imaginarium-axolotl-check-") as work:
            try:
                report["chat_template_problems"], report["rows"] = preprocess(config_path, raw, rows, Path(work))
            except Exception as exc:  # Axolotl's own message is the useful one
                report["preprocess_error"] = f"{type(exc).__name__}: {exc}"
    report["ok"] = (not report["unknown_keys"] and not report["validation_errors"]
                    and not report["chat_template_problems"]
                    and "preprocess_error" not in report and all(row["ok"] for row in report["rows"])
                    and (rows == 0 or bool(report["rows"]) or bool(report["chat_template_problems"])))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--rows", type=int, default=8, help="rows to preprocess and check (0: validation only)")
    parser.add_argument("--json", type=Path, help="write the report as JSON to this file")
    args = parser.parse_args()
    try:
        report = run_check(args.config, args.rows)
    except (OSError, ValueError) as exc:
        print(f"{args.config}: cannot read the config: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    else:
        print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


# Axolotl's dataset save step spawns worker processes that re-import this file: keep the guard.
if __name__ == "__main__":
    sys.exit(main())
