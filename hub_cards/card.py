"""The dataset card (README.md), rendered from the release's manifests and reports, never by hand.

The YAML front matter is `huggingface_hub.DatasetCardData` (so it is the metadata the Hub and
`datasets` read: `configs` with `data_files` per split, `dataset_info` features from the Arrow
schema); the prose is a Jinja template in templates/. What the card says of how each config was
made comes from one typed object, `CardFacts` (imaginarium/card_facts.py), read back from the
release's copy of the stage's manifest and reports. Sections whose facts no stage recorded
(exploration quality, filter funnel, judge model, response sources, rows per API) are left out
rather than guessed. The keys read are listed in docs/releases.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData
from jinja2 import Environment, PackageLoader, StrictUndefined

from imaginarium.card_facts import REPORT_FILES, CardFacts
from imaginarium.hub_cards.plot import write_bar_chart

EXAMPLES_PER_CONFIG = 2
EXAMPLE_CHARS = 1500
_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]


def render_card(release_dir: Path, release: dict[str, Any], *, repo_id: str | None, license: str,
                pretty_name: str | None) -> str:
    """README.md text for the release in `release_dir` (data and provenance already written)."""
    repo_id = repo_id or f"OWNER/{release['name']}"
    configs = [_config_facts(release_dir, name, info) for name, info in release["configs"].items()]
    total = sum(c["rows"] for c in configs)
    kinds = {c["kind"] for c in configs}
    default = next((c["name"] for c in configs if c["kind"] == "sft"), configs[0]["name"])
    tags = ["tool-use", "function-calling", "synthetic", "imaginarium"]
    tags += [t for t, kind in (("ste", "sft"), ("trice", "preference")) if kind in kinds]
    metadata = DatasetCardData(
        pretty_name=pretty_name or release["name"],
        license=license,
        language=["en"],
        task_categories=["text-generation"],
        tags=tags,
        size_categories=[next((label for bound, label in _SIZE_CATEGORIES if total < bound), "n>100M")],
        configs=[
            {"config_name": c["name"], **({"default": True} if c["name"] == default else {}),
             "data_files": [{"split": s, "path": f"data/{c['name']}/{s}-*"} for s in c["splits"]]}
            for c in configs
        ],
        dataset_info=[_dataset_info(release_dir, c["name"], release["configs"][c["name"]]) for c in configs],
    )
    for config in configs:
        if config["apis"]:
            config["plot"] = f"assets/{config['name']}_rows_per_api.png"
            write_bar_chart(release_dir / config["plot"], config["apis"], f"Rows per API in {config['name']}")
    cache_sources = _cache_sources(release_dir)
    environment = Environment(loader=PackageLoader("imaginarium.hub_cards", "templates"), undefined=StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    body = environment.get_template("README.md.j2").render(
        name=release["name"], pretty_name=metadata.pretty_name, version=release["version"],
        tag=f"v{release['version']}", repo_id=repo_id, configs=configs, total=total, kinds=kinds,
        license=license, cache_sources=cache_sources,
        cache_simulated_share=(cache_sources.get("simulated", 0) / sum(cache_sources.values())) if cache_sources else None,
    )
    card = DatasetCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}")
    return str(card)


def _config_facts(release_dir: Path, name: str, info: dict[str, Any]) -> dict[str, Any]:
    manifest = json.loads((release_dir / f"provenance/manifests/{name}.json").read_text(encoding="utf-8"))
    extra = manifest.get("extra") or {}
    first_shard = _first_shard(release_dir, info)
    schema = pq.read_schema(first_shard)
    columns = schema.names
    kind = "preference" if {"chosen", "rejected"} <= set(columns) else "sft" if "messages" in columns else "rows"
    if kind == "preference" and schema.field("chosen").type in (pa.string(), pa.large_string()):
        kind = "preference_text"  # rendered with a chat template: the form Axolotl's DPO can train on
    reports = {}
    for key, file_name in REPORT_FILES.items():
        path = release_dir / f"provenance/reports/{name}/{file_name}"
        if path.is_file():
            reports[key] = json.loads(path.read_text(encoding="utf-8"))
    facts = CardFacts.from_parts(extra, reports)
    return {
        "name": name,
        "kind": kind,
        "stage": info.get("stage"),
        "rows": info["rows"],
        "splits": {split: s["rows"] for split, s in info["splits"].items()},
        "apis": info.get("apis"),
        "scenario_kinds": info.get("kinds"),
        "funnel": facts.funnel,
        "quality": facts.quality if facts.quality and facts.quality.get("trials") else None,
        "judge_model": facts.judge_model,
        "response_sources": facts.response_sources,
        "simulated_share": facts.simulated_share,
        "examples": _examples(first_shard),
        "plot": None,
    }


def _first_shard(release_dir: Path, info: dict[str, Any]) -> Path:
    return release_dir / next(iter(info["splits"].values()))["files"][0]


def _cache_sources(release_dir: Path) -> dict[str, int]:
    """Entries of the shipped response cache per source (real, simulated), from its counts."""
    manifest_file = release_dir / "provenance/response_cache/manifest.json"
    if not manifest_file.is_file():
        return {}
    sources: dict[str, int] = {}
    for key, count in (json.loads(manifest_file.read_text(encoding="utf-8")).get("counts") or {}).items():
        if "/" in key and isinstance(count, int):  # "<tool>/<source>", as the cache export counts
            source = key.rsplit("/", 1)[1]
            sources[source] = sources.get(source, 0) + count
    return dict(sorted(sources.items()))


def _examples(shard: Path) -> list[str]:
    rows = pq.read_table(shard).slice(0, EXAMPLES_PER_CONFIG).to_pylist()
    texts = []
    for row in rows:
        text = json.dumps(_without_nulls(row), indent=1, ensure_ascii=False, default=str)
        texts.append(text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + "\n... (truncated)")
    return texts


def _without_nulls(value: Any) -> Any:
    """Examples read better without the null fields that keep the Arrow schema uniform."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _dataset_info(release_dir: Path, name: str, info: dict[str, Any]) -> dict[str, Any]:
    """The `dataset_info` entry of one config: features (from the Arrow schema) and split sizes."""
    from datasets import Features

    features = Features.from_arrow_schema(pq.read_schema(_first_shard(release_dir, info)))
    splits = [{"name": s, "num_bytes": v["num_bytes"], "num_examples": v["rows"]} for s, v in info["splits"].items()]
    return {
        "config_name": name,
        "features": features._to_yaml_list(),
        "splits": splits,
        "download_size": sum(v["download_size"] for v in info["splits"].values()),
        "dataset_size": sum(v["num_bytes"] for v in info["splits"].values()),
    }
