"""Prompt templates: Jinja files shipped in generators/templates/, overridable per recipe.

A recipe (or `--templates DIR`) may point at a folder holding files with the same relative
names (for example `explore/imagine.j2`); those win over the shipped ones, file by file.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from imaginarium.errors import InputError
from imaginarium.schemas.toolspec import ToolSpec

_PACKAGE_TEMPLATES = Path(__file__).parent / "templates"


class Prompts:
    """Renders the prompt templates of one stage, e.g. `Prompts("explore").render("imagine", ...)`."""

    def __init__(self, stage: str, override_dir: str | Path | None = None):
        search = [str(_PACKAGE_TEMPLATES)]
        if override_dir is not None:
            if not Path(override_dir).is_dir():
                raise InputError("template folder not found", where=str(override_dir))
            search.insert(0, str(override_dir))
        self.stage = stage
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def render(self, name: str, **context) -> str:
        try:
            template = self.env.get_template(f"{self.stage}/{name}.j2")
        except jinja2.TemplateNotFound:
            raise InputError(f"no template {self.stage}/{name}.j2") from None
        return template.render(**context).strip()


def tool_doc(tool: ToolSpec) -> str:
    """Human-readable documentation of a tool, as a model is shown it."""
    lines = [f"Tool name: {tool.name}"]
    if tool.description:
        lines.append(f"Description: {tool.description}")
    properties = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    if properties:
        lines.append("Parameters:")
        for name, schema in properties.items():
            kind = schema.get("type", "any")
            kind = "/".join(kind) if isinstance(kind, list) else kind
            flag = "required" if name in required else "optional"
            detail = schema.get("description", "")
            extras = [f"one of {json.dumps(schema['enum'])}"] if "enum" in schema else []
            if "default" in schema:
                extras.append(f"default {json.dumps(schema['default'])}")
            suffix = f" ({'; '.join(extras)})" if extras else ""
            lines.append(f"- {name} ({kind}, {flag}): {detail}{suffix}".rstrip())
    else:
        lines.append("Parameters: none")
    return "\n".join(lines)
