"""Preference data rows: chosen/rejected pairs and stage-1 rows from TRICE's ranked candidates.

Shapes only (schemas/records/preference_row.json and sft_row.json, typed in schemas/rows.py):
which candidates make a pair or a stage-1 row is TRICE's choice (trice/ranking.py); the
rendered-text form that Axolotl's DPO trains on is builders/preference_text.py.
"""

from __future__ import annotations

import json
from typing import Any

from imaginarium.schemas.rows import PreferenceRow, SftRow


def preference_row(ranking_row: dict[str, Any], chosen: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any]:
    """One chosen/rejected row: the question's prompt and tools, both candidates' messages and scores."""
    return PreferenceRow(question_id=ranking_row["question_id"], task=ranking_row["task"], prompt=ranking_row["prompt"],
                         tools=ranking_row["tools"], chosen=chosen["messages"], rejected=rejected["messages"],
                         chosen_score=chosen["score"], rejected_score=rejected["score"]).to_row()


def candidate_sft_row(ranking_row: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """A behaviour-cloning chat row from one candidate of a ranking row."""
    called = [call["function"]["name"] for m in candidate["messages"] for call in m["tool_calls"] or []]
    scores = json.dumps({"score": candidate["score"], "reason": candidate["reason"], "model": candidate["model"]},
                        ensure_ascii=False)
    return SftRow(messages=ranking_row["prompt"] + candidate["messages"], tools=ranking_row["tools"],
                  api=called[0] if called else ranking_row["task"], origin_trial=ranking_row["question_id"],
                  paraphrase_of=None, source="trice", scores=scores).to_row()
