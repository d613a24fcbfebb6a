"""Prompt templates: Jinja files shipped beside each stage, overridable per run.

Each stage package keeps its templates in its own `templates/<stage>/` folder (generators:
explore/ and paraphrase/, filters: judge/, trice: trice/). A recipe (or `--templates DIR`) may
point at a folder holding files with the same relative names (for example
`explore/imagine.j2`); those win over the shipped ones, file by file.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from imaginarium.errors import InputError


class Prompts:
    """Renders the templates of one stage: `Prompts(TEMPLATES, "explore").render("imagine", ...)`."""

    def __init__(self, package_templates: Path, stage: str, override_dir: str | Path | None = None):
        search = [str(package_templates)]
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
