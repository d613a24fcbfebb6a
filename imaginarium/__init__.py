"""imaginarium: verified tool-use training data for LLMs, generated offline (STE and TRICE).

The pipeline from Python: each stage is a function that takes its inputs, an output path and
a typed config (the same options as its command), and returns the stage's manifest.

    >>> from imaginarium import import_tools, explore, ExploreConfig, filter_stage, FilterConfig
    >>> import_tools(["openapi.yaml"], "tools.jsonl")
    >>> explore("tools.jsonl", "runs/explore", ExploreConfig(episodes=2, stm_slots=2))
    >>> filter_stage("runs/explore", "runs/filter", FilterConfig(judge=False))

Configs are pydantic models: `ExploreConfig(episodes=2)` checks its values, and
`ExploreConfig.from_flat({"episodes": 2, "model": "tiny"})` takes the flat names a recipe uses
(nested option groups included) and raises `InputError` with one line naming the bad key.
Names are imported lazily, so `import imaginarium` stays light. Model stages run on a Ray
cluster with `ExploreConfig(scale={"engine": "ray"})` (flat: `engine="ray"`) or by handing them
`ray_engine=RayEngine(EngineOptions(engine="ray", replicas=4))` (docs/scale.md).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("imaginarium")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# Public name -> module that defines it.
_EXPORTS = {
    "InputError": "imaginarium.errors",
    "GenerationOptions": "imaginarium.models.options",
    "ExecutionOptions": "imaginarium.executor.options",
    "DedupeOptions": "imaginarium.filters.dedupe",
    "EngineOptions": "imaginarium.engine",
    "RayEngine": "imaginarium.engine",
    "import_tools": "imaginarium.executor.tools_import",
    "ImportConfig": "imaginarium.executor.tools_import",
    "explore": "imaginarium.generators.explore",
    "ExploreConfig": "imaginarium.generators.explore",
    "filter_stage": "imaginarium.filters.filter",
    "FilterConfig": "imaginarium.filters.filter",
    "augment": "imaginarium.generators.augment",
    "AugmentConfig": "imaginarium.generators.augment",
    "build_sft": "imaginarium.builders.sft",
    "SftConfig": "imaginarium.builders.sft",
    "build_continual": "imaginarium.builders.continual",
    "ContinualConfig": "imaginarium.builders.continual",
    "rank": "imaginarium.trice.rank",
    "RankConfig": "imaginarium.trice.rank",
    "predict": "imaginarium.evaluation.predict",
    "PredictConfig": "imaginarium.evaluation.predict",
    "evaluate": "imaginarium.evaluation.evaluate",
    "EvalConfig": "imaginarium.evaluation.evaluate",
    "run_recipe": "imaginarium.recipes.runner",
    "open_backend": "imaginarium.models.options",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'imaginarium' has no attribute {name!r}")
