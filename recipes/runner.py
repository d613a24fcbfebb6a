"""`imaginarium run RECIPE`: chain stages by name from a YAML recipe.

A recipe names stages in order; each stage `uses` a stage kind and passes `with` parameters to
the kind's Python function (the same function its CLI command calls). Values:

- a string starting with `@` is the output of an earlier stage of the recipe (`@tools`);
- a path parameter (a kind's `paths`) is relative to the recipe file;
- the recipe's `generation:` block (backend, model, revision, seed, ...) gives defaults to every
  stage whose function takes those parameters; a stage's own `with` wins.

Each stage writes into the run directory (`RUN/<stage name>`, or a file name for stages that
write a file). Stages that write stage directories are no-ops when their fingerprint is
unchanged, so re-running a recipe skips everything already done and resumes an interrupted stage.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from imaginarium.atomic import atomic_write_text
from imaginarium.errors import InputError
from imaginarium.generators.defaults import GenerationDefaults
from imaginarium.stage import read_manifest

PACKAGED = Path(__file__).parent


@dataclass(frozen=True)
class StageKind:
    """A stage kind: its function, the parameter that names its output, and its path parameters."""

    function: str  # "module:function"
    output: str  # the function's output parameter
    output_name: str | None = None  # a file name for stages that write one file, else a directory
    paths: tuple[str, ...] = ()

    def load(self) -> Callable[..., Any]:
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)


KINDS = {
    "tools": StageKind("imaginarium.schemas.importers:import_tools", "output", "tools.jsonl", ("sources",)),
    "cache": StageKind("imaginarium.recipes.runner:response_cache", "into", "cache.sqlite", ("source",)),
    "explore": StageKind("imaginarium.generators.explore_cli:explore", "out", None, ("tools", "cache", "templates", "apis_file")),
    "filter": StageKind("imaginarium.filters.cli:filter_stage", "out", None, ("trials",)),
    "augment": StageKind("imaginarium.filters.cli:augment", "out", None, ("trials", "templates")),
    "build_sft": StageKind("imaginarium.builders.sft:build_sft", "out", None, ("trials", "tools")),
    "rank": StageKind("imaginarium.generators.trice_cli:rank", "out", None, ("questions", "tools", "cache", "templates")),
    "build_continual": StageKind("imaginarium.builders.continual:build_continual", "out", None,
                                 ("rows", "batches", "general", "tools")),
}

# The recipe's `generation:` block sets the defaults of generators/defaults.py for every stage
# (plus the openai backend's server address); a stage's own `with` wins.
GENERATION_KEYS = tuple(f.name for f in dataclasses.fields(GenerationDefaults)) + ("base_url",)


def response_cache(into: Path, source: str | Path | None = None) -> Path:
    """The `cache` stage: a response cache in the run directory, seeded from `source` if given."""
    from imaginarium.executor.cache import ResponseCache, import_cache

    if source is not None:
        import_cache(source, into)
    else:
        ResponseCache(into).close()  # creates an empty cache for record / simulate modes
    return into


def find_recipe(recipe: str | Path) -> Path:
    """A recipe path, or the name of a packaged recipe (`quickstart` -> recipes/quickstart.yaml)."""
    path = Path(recipe)
    if path.is_file():
        return path
    packaged = PACKAGED / f"{recipe}.yaml"
    if packaged.is_file():
        return packaged
    known = ", ".join(sorted(p.stem for p in PACKAGED.glob("*.yaml")))
    raise InputError(f"no such recipe file, and no packaged recipe of that name (packaged: {known})", where=str(recipe))


def load_recipe(path: Path) -> dict[str, Any]:
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", where=str(path)) from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("stages"), list) or not recipe["stages"]:
        raise InputError("a recipe is a mapping with a non-empty `stages` list", where=str(path))
    names = set()
    for index, stage in enumerate(recipe["stages"]):
        where = f"{path}: stages[{index}]"
        if not isinstance(stage, dict) or "name" not in stage or "uses" not in stage:
            raise InputError("each stage needs `name` and `uses`", where=where)
        if stage["uses"] not in KINDS:
            raise InputError(f"unknown stage kind {stage['uses']!r}; known: {', '.join(KINDS)}", where=where)
        if stage["name"] in names:
            raise InputError(f"duplicate stage name {stage['name']!r}", where=where)
        unknown = set(stage) - {"name", "uses", "with"}
        if unknown:
            raise InputError(f"unknown key(s) {', '.join(sorted(unknown))}", where=where)
        names.add(stage["name"])
    return recipe


def run_recipe(recipe: str | Path, out: str | Path | None = None, *, progress: bool = True,
               echo: Callable[[str], None] = print) -> dict[str, Path]:
    """Run every stage of a recipe into `out` (default runs/<recipe name>); returns stage outputs."""
    path = find_recipe(recipe)
    spec = load_recipe(path)
    run_dir = Path(out) if out is not None else Path("runs") / spec.get("name", path.stem)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "recipe.yaml", path.read_text(encoding="utf-8"))
    generation = spec.get("generation") or {}
    unknown = set(generation) - set(GENERATION_KEYS)
    if unknown:
        raise InputError(f"unknown generation setting(s) {', '.join(sorted(unknown))}; known: {', '.join(GENERATION_KEYS)}",
                         where=f"{path}: generation")
    outputs: dict[str, Path] = {}
    for index, stage in enumerate(spec["stages"]):
        kind = KINDS[stage["uses"]]
        function = kind.load()
        accepted = inspect.signature(function).parameters
        where = f"{path}: stages[{index}] ({stage['name']})"
        params = {k: v for k, v in generation.items() if k in accepted}
        params.update(_resolve(stage.get("with") or {}, kind, outputs, path.parent, where))
        target = run_dir / (kind.output_name or stage["name"])
        params[kind.output] = target
        if "progress" in accepted:
            params["progress"] = progress
        bad = sorted(set(params) - set(accepted))
        if bad:
            raise InputError(f"unknown parameter(s) {', '.join(bad)} for stage kind {stage['uses']!r}", where=where)
        before = read_manifest(target) if target.is_dir() else None
        echo(f"[{stage['name']}] {stage['uses']} -> {target}")
        function(**params)
        after = read_manifest(target) if target.is_dir() else None
        if before is not None and after is not None and before["created_at"] == after["created_at"]:
            echo(f"[{stage['name']}] unchanged inputs and settings: skipped")
        outputs[stage["name"]] = target
    return outputs


def _resolve(values: dict[str, Any], kind: StageKind, outputs: dict[str, Path], base: Path, where: str) -> dict[str, Any]:
    def one(key: str, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            if value[1:] not in outputs:
                raise InputError(f"{key}: {value} is not an earlier stage", where=where)
            return outputs[value[1:]]
        if key in kind.paths and isinstance(value, str):
            return base / value
        return value

    resolved = {}
    for key, value in values.items():
        resolved[key] = [one(key, v) for v in value] if isinstance(value, list) else one(key, value)
    return resolved

