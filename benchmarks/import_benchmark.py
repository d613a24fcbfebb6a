"""Import real API descriptions and report, per spec: operations, tools, skipped, warnings, seconds.

    python benchmarks/import_benchmark.py SPECS_DIR [--out benchmarks/results/import-real-specs.json]

SPECS_DIR holds the specs (any depth; multi-file specs keep their layout) and may list them in a
`_sources.tsv` (relative path first on each line); without it every `*.json`, `*.yaml` and
`*.yml` whose top level says `openapi` or `swagger` is imported. The specs themselves are not in
the repository (their licences vary, some are megabytes): the results file records what was
measured, on which machine. Operations are counted from the source (path items, following
file references), tools from the import with `--skip-invalid`. One import per spec, in this
process, on one core (imports are single-threaded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def spec_files(root: Path) -> list[Path]:
    index = root / "_sources.tsv"
    if index.is_file():
        return [root / line.split("\t")[0] for line in index.read_text().splitlines() if line.strip()]
    from imaginarium.schemas.importers import read_document

    found = []
    for path in sorted([*root.rglob("*.json"), *root.rglob("*.yaml"), *root.rglob("*.yml")]):
        try:
            document = read_document(path)
        except Exception:
            continue
        if isinstance(document, dict) and ("openapi" in document or "swagger" in document):
            found.append(path)
    return found


def operations(path: Path) -> int:
    """Path + method pairs, following path items that are file references."""
    from imaginarium.schemas.importers import read_document

    document = read_document(path)
    count = 0
    for item in (document.get("paths") or {}).values():
        if isinstance(item, dict) and isinstance(item.get("$ref"), str) and not item["$ref"].startswith("#"):
            target = (path.parent / item["$ref"].split("#")[0]).resolve()
            item = read_document(target) if target.is_file() else {}
        if isinstance(item, dict):
            count += sum(1 for method in METHODS if method in item)
    return count


def measure(path: Path, root: Path) -> dict:
    from imaginarium.errors import InputError
    from imaginarium.executor.tools_import import ImportConfig, import_tools

    out = Path(tempfile.mkdtemp()) / "tools.jsonl"
    warnings: list = []
    document = path.read_text(encoding="utf-8", errors="replace")[:2000]
    version = "swagger 2.0" if '"swagger"' in document or "swagger:" in document else "openapi 3"
    start = time.perf_counter()
    try:
        tools, skipped = import_tools([path], out, ImportConfig(skip_invalid=True), warnings=warnings)
        error = None
    except InputError as exc:
        tools, skipped, error = [], getattr(exc, "skipped", []), str(exc)[:300]
    seconds = time.perf_counter() - start
    return {
        "spec": str(path.relative_to(root)), "version": version, "bytes": path.stat().st_size,
        "operations": operations(path), "tools": len(tools), "skipped": len(skipped), "warnings": len(warnings),
        "seconds": round(seconds, 2), "output_bytes": out.stat().st_size if out.exists() else 0,
        "first_skip": skipped[0][1][:200] if skipped else None, "first_warning": warnings[0][1][:200] if warnings else None,
        "error": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "import-real-specs.json")
    args = parser.parse_args()
    rows = []
    for path in spec_files(args.specs):
        row = measure(path, args.specs)
        rows.append(row)
        print(f"{row['spec'][:64]:64s} {row['operations']:5d} ops {row['tools']:5d} tools {row['skipped']:3d} skip "
              f"{row['warnings']:3d} warn {row['seconds']:7.2f} s", flush=True)
    totals = {key: sum(row[key] for row in rows) for key in ("operations", "tools", "skipped", "warnings", "seconds")}
    result = {"machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()}, "specs": len(rows),
              "totals": {**totals, "seconds": round(totals["seconds"], 1)}, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["totals"]))


if __name__ == "__main__":
    main()
