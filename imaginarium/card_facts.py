"""What a dataset card says about how a config's rows were made: one typed object, from the
stages' manifests to the card.

Why one object: the facts are recorded by the stage that knows them (explore: the quality
report; filter: the funnel, the judge's model, the response sources of the kept trials; the
builders: the response sources behind their rows) and must reach the release card through every
later stage. Each stage reads the facts of its input (`CardFacts.read`), adds what it knows and
writes them with its output (`extra()` into the manifest, `files()` beside the data), so no stage
names another's keys. A new card section is one field here plus the template.

Where they live in a stage directory: the reports as files (`quality.json`, `funnel.json`, which
the release copies under provenance/reports/), the rest in the manifest's `extra` (the keys in
docs/releases.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPORT_FILES = {"quality": "quality.json", "funnel": "funnel.json"}


@dataclass
class CardFacts:
    """The facts behind one config (see the module docstring); None or empty: not recorded.

    Attributes:
        quality: the exploration's quality report (generators/quality.py), before filtering.
        funnel: rows in and out per filter step, overall and per API (filters/filter.py).
        judge_model: the model that judged success, when an LLM judge ran.
        response_sources: tool responses behind the rows per source (`real`, `cached`, `simulated`).
        models: the models that made the rows, `[{"id", "revision", "role"}]` (provenance).
    """

    quality: dict[str, Any] | None = None
    funnel: dict[str, Any] | None = None
    judge_model: str | None = None
    response_sources: dict[str, int] = field(default_factory=dict)
    models: list[dict[str, Any]] | None = None

    @classmethod
    def from_parts(cls, extra: dict[str, Any], reports: dict[str, dict[str, Any]]) -> CardFacts:
        """The facts from a manifest's `extra` and the report files (by key: quality, funnel)."""
        return cls(
            quality=reports.get("quality") or extra.get("quality"),
            funnel=reports.get("funnel") or extra.get("funnel"),
            judge_model=extra.get("judge_model"),
            response_sources=dict(extra.get("response_sources") or {}),
            models=extra.get("models"),
        )

    @classmethod
    def read(cls, directory: str | os.PathLike | None, manifest: dict[str, Any] | None = None) -> CardFacts:
        """The facts a stage directory carries (none for None or a directory without them).

        `manifest` is the directory's manifest when the caller has it (default: read it).
        """
        if directory is None:
            return cls()
        directory = Path(directory)
        if manifest is None:
            from imaginarium.stage import read_manifest

            manifest = read_manifest(directory) or {}
        reports = {}
        for key, name in REPORT_FILES.items():
            path = directory / name
            if path.is_file():
                reports[key] = json.loads(path.read_text(encoding="utf-8"))
        return cls.from_parts(manifest.get("extra") or {}, reports)

    def carried(self) -> CardFacts:
        """The facts that still hold for rows made from these ones (response sources are recounted)."""
        return replace(self, response_sources={})

    def extra(self) -> dict[str, Any]:
        """The manifest `extra` entries for these facts (reports go to `files()`)."""
        extra: dict[str, Any] = {}
        if self.funnel is not None:
            extra["funnel"] = self.funnel
        if self.judge_model is not None:
            extra["judge_model"] = self.judge_model
        if self.response_sources:
            extra["response_sources"] = dict(sorted(self.response_sources.items()))
        if self.models is not None:
            extra["models"] = self.models
        return extra

    def files(self) -> dict[str, str]:
        """The report files to write beside the data, by file name."""
        return {name: json.dumps(getattr(self, key), indent=2) + "\n"
                for key, name in REPORT_FILES.items() if getattr(self, key) is not None}

    @property
    def simulated_share(self) -> float | None:
        """The share of the tool responses that a model simulated (None: no responses recorded)."""
        total = sum(self.response_sources.values())
        return self.response_sources.get("simulated", 0) / total if total else None
