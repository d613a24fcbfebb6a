"""`imaginarium run RECIPE`: chain stages by name from a YAML recipe.

A recipe names stages in order; each stage `uses` a stage kind and passes `with` values:

- the stage's inputs (a tools file, a trials directory, ...), where a string starting with `@`
  is the output of an earlier stage of the recipe (`@tools`) and a path is relative to the
  recipe file;
- its settings: exactly the flat keys of the kind's typed config (the command's options with
  `_` for `-`: `episodes`, `cache_mode`, `require`), checked by the same config, so an unknown
  key or a wrong type is one line naming the recipe file, the stage and the key. Lists are YAML
  lists (comma strings are accepted too);
- the recipe's `generation:` block sets the generation options (backend, model, sampling, ...)
  of every stage that generates; a stage's own `with` wins.

Each stage writes into the run directory (`RUN/<stage name>`, or a file name for stages that
write a file). Stages that write stage directories are no-ops when their fingerprint is
unchanged, so re-running a recipe skips everything already done and resumes an interrupted stage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imaginarium.atomic import atomic_write_text
from imaginarium.errors import InputError
from imaginarium.models.options import GenerationOptions
from imaginarium.options import Options
from imaginarium.stage import read_manifest

PACKAGED = Path(__file__).parent


@dataclass(frozen=True)
class StageKind:
    """A stage kind: its function, its typed config, its inputs and where its output goes.

    The function is called as `function(**inputs, out=OUTPUT, config=CONFIG, progress=...)`.
    """

    function: str  # "module:function"
    config: str  # "module:Class", a subclass of imaginarium.options.Options
    inputs: tuple[str, ...] = ()  # input parameters, in the recipe's `with:` like settings
    output_name: str | None = None  # a file name for stages that write one file, else a directory
    paths: tuple[str, ...] = ()  # settings and inputs that are paths relative to the recipe

    def load(self) -> Callable[..., Any]:
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)

    def config_class(self) -> type[Options]:
        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)


KINDS = {
    "tools": StageKind("imaginarium.recipes.runner:tools_stage", "imaginarium.executor.tools_import:ImportConfig",
                       ("sources",), "tools.jsonl", ("sources", "mcp_config")),
    "cache": StageKind("imaginarium.recipes.runner:response_cache", "imaginarium.recipes.runner:CacheConfig",
                       ("source",), "cache.sqlite", ("source",)),
    "explore": StageKind("imaginarium.generators.explore:explore", "imaginarium.generators.explore:ExploreConfig",
                         ("tools",), None, ("tools", "cache", "templates", "apis_file")),
    "filter": StageKind("imaginarium.filters.filter:filter_stage", "imaginarium.filters.filter:FilterConfig",
                        ("trials",), None, ("trials", "templates")),
    "augment": StageKind("imaginarium.generators.augment:augment", "imaginarium.generators.augment:AugmentConfig",
                         ("trials",), None, ("trials", "templates")),
    "build_sft": StageKind("imaginarium.builders.sft:build_sft", "imaginarium.builders.sft:SftConfig",
                           ("trials", "tools"), None, ("trials", "tools")),
    "rank": StageKind("imaginarium.trice.rank:rank", "imaginarium.trice.rank:RankConfig",
                      ("questions",), None, ("questions", "tools", "cache", "templates")),
    "build_continual": StageKind("imaginarium.builders.continual:build_continual",
                                 "imaginarium.builders.continual:ContinualConfig",
                                 ("rows",), None, ("rows", "batches", "general", "tools")),
}


class CacheConfig(Options):
    """The `cache` stage has no settings: it copies `source` (optional) into a new cache."""


def response_cache(source: str | Path | None = None, *, out: Path, config: CacheConfig | None = None,
                   progress: bool = True) -> Path:
    """The `cache` stage: a response cache in the run directory, seeded from `source` if given."""
    from imaginarium.executor.cache import ResponseCache, import_cache

    if source is not None:
        import_cache(source, out)
    else:
        ResponseCache(out).close()  # creates an empty cache for record / simulate modes
    return out


def tools_stage(sources: list[str | Path] | None = None, *, out: Path, config: Options | None = None,
                progress: bool = True) -> Path:
    """The `tools` stage: `tools import` (files, live MCP servers) into the run directory."""
    from imaginarium.executor.tools_import import ImportConfig, import_tools

    sources = sources if isinstance(sources, list) else [sources] if sources else []
    import_tools(sources, out, config if isinstance(config, ImportConfig) else None)
    return out


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


def run_recipe(recipe: str | Path, out: str | Path | None = None, *, generation: dict[str, Any] | None = None,
               progress: bool = True, echo: Callable[[str], None] = print) -> dict[str, Path]:
    """Run every stage of a recipe into `out` (default runs/<recipe name>); returns stage outputs.

    Args:
        recipe: a recipe file, or the name of a packaged recipe (`quickstart`).
        out: the run directory.
        generation: generation options that override the recipe's `generation:` block (another
            model, a served one), as flat keys (`{"model": "tiny"}`).
        progress: show progress bars.
        echo: where progress lines go.

    Returns:
        Stage name -> its output path.

    Raises:
        InputError: a malformed recipe (naming the file, stage and key), or any stage's error.
    """
    path = find_recipe(recipe)
    spec = load_recipe(path)
    run_dir = Path(out) if out is not None else Path("runs") / spec.get("name", path.stem)
    recipe_generation = spec.get("generation") or {}
    if not isinstance(recipe_generation, dict):
        raise InputError("must be a mapping of generation options", where=f"{path}: generation")
    generation = {**recipe_generation, **{k: v for k, v in (generation or {}).items() if v is not None}}
    GenerationOptions.from_flat(generation, where=f"{path}: generation")  # its keys and values, checked once
    names = [stage["name"] for stage in spec["stages"]]
    plans = [_plan(stage, index, names[:index], generation, path) for index, stage in enumerate(spec["stages"])]
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "recipe.yaml", path.read_text(encoding="utf-8"))
    outputs: dict[str, Path] = {}
    for stage, (kind, inputs, config) in zip(spec["stages"], plans):
        target = run_dir / (kind.output_name or stage["name"])
        resolved = {key: _reference(value, outputs, f"{path}: stage {stage['name']}") for key, value in inputs.items()}
        config = _with_references(config, outputs, f"{path}: stage {stage['name']}")
        before = read_manifest(target) if target.is_dir() else None
        echo(f"[{stage['name']}] {stage['uses']} -> {target}")
        kind.load()(**resolved, out=target, config=config, progress=progress)
        after = read_manifest(target) if target.is_dir() else None
        if before is not None and after is not None and before["created_at"] == after["created_at"]:
            echo(f"[{stage['name']}] unchanged inputs and settings: skipped")
        outputs[stage["name"]] = target
    return outputs


def _plan(stage: dict[str, Any], index: int, earlier: list[str], generation: dict[str, Any], path: Path):
    """A stage's kind, inputs and validated config, before anything runs (so a typo in the last
    stage is reported before the first one spends an hour)."""
    kind = KINDS[stage["uses"]]
    where = f"{path}: stages[{index}] ({stage['name']})"
    values = stage.get("with") or {}
    if not isinstance(values, dict):
        raise InputError("`with` must be a mapping of inputs and settings", where=where)
    values = {key: _relative(key, value, kind, path.parent) for key, value in values.items()}
    inputs = {key: values.pop(key) for key in kind.inputs if key in values}
    cls = kind.config_class()
    fields = cls.flat_fields()
    settings = {key: value for key, value in generation.items() if key in fields}
    settings.update(values)
    # `@stage` references in settings (a cache) are resolved when the stage runs; checked here
    # with a placeholder path so their type is right.
    references = {key: value for key, value in settings.items() if isinstance(value, str) and value.startswith("@")}
    checked = {key: (Path("@" + value[1:]) if key in references else value) for key, value in settings.items()}
    config = cls.from_flat(checked, where=where)
    for key, value in [*references.items(), *inputs.items()]:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("@") and item[1:] not in earlier:
                raise InputError(f"{key}: {item} is not an earlier stage", where=where)
    return kind, inputs, config


def _relative(key: str, value: Any, kind: StageKind, base: Path) -> Any:
    """A path setting relative to the recipe file (lists element by element; `@refs` kept)."""
    if key not in kind.paths:
        return value
    if isinstance(value, list):
        return [_relative(key, v, kind, base) for v in value]
    if isinstance(value, str) and not value.startswith("@"):
        return base / value
    return value


def _reference(value: Any, outputs: dict[str, Path], where: str) -> Any:
    if isinstance(value, list):
        return [_reference(v, outputs, where) for v in value]
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in outputs:
            raise InputError(f"{value} is not an earlier stage", where=where)
        return outputs[value[1:]]
    return value


def _with_references(config: Options, outputs: dict[str, Path], where: str) -> Options:
    """The config with `@stage` placeholders (Path("@name")) replaced by that stage's output."""
    flat = config.flat()
    changed = {key: outputs[str(value)[1:]] for key, value in flat.items()
               if isinstance(value, Path) and str(value).startswith("@") and str(value)[1:] in outputs}
    if not changed:
        return config
    return type(config).from_flat({**flat, **changed}, where=where)
