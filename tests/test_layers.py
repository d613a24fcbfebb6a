"""The layer contract (docs/architecture.md): imports run downward only, with no exception.

Every module of the package is read with `ast` (imports inside functions count too); a module
may import its own folder and the folders below it, never one above.
"""

from __future__ import annotations

import ast

from paths import ROOT

# Bottom first. A folder may import itself and every folder before it in this list.
LAYERS = [
    "imaginarium",      # the core: errors, stage directories, options, prompts, embeddings, the CLI's entry
    "schemas",          # ToolSpec, importers, constraint schemas, records, argument matching
    "models",           # the LLM layer: backends, grammars, caches, the embedded models
    "executor",         # running tools against the response cache; the simulator takes a models backend
    "filters",          # the filter stage: checks, judge, dedupe
    "generators",       # explore and augment
    "builders",         # training rows: SFT, preference, continual
    "trice",            # TRICE: questions, sampling, scoring, ranking, the rank stage
    "evaluation",       # predict and eval
    "hub_cards",        # releases and publishing
    "axolotl_configs",  # training configs
    "recipes",          # the runner: every stage
]


def imported_folders(path) -> set[tuple[str, int]]:
    """(folder, line) for every `imaginarium.<folder>` the module imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "imaginarium":
                continue
            folder = parts[1] if len(parts) > 1 and parts[1] in LAYERS else "imaginarium"
            found.add((folder, node.lineno))
    return found


def modules():
    for folder in LAYERS:
        yield from ((folder, path) for path in sorted((ROOT / folder).rglob("*.py")))


def test_every_package_folder_has_a_layer():
    import tomllib

    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert {directory.split("/")[0] for directory in mapped.values()} == set(LAYERS)


def test_imports_run_downward_only():
    rank = {folder: index for index, folder in enumerate(LAYERS)}
    violations = []
    for folder, path in modules():
        for imported, line in imported_folders(path):
            if rank[imported] > rank[folder]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports imaginarium.{imported}")
    assert violations == [], "\n".join(sorted(violations))


def test_the_contract_is_written_down():
    text = (ROOT / "docs" / "architecture.md").read_text()
    listed = [folder for folder in LAYERS if f"`{folder}/`" in text.split("## Layers")[1]]
    assert listed == LAYERS
