"""The augment stage: paraphrase counts as in STE, rows copied from their seed, dedupe after."""

import json

import pytest

from imaginarium.generators.augment import AugmentConfig, augment, paraphrase_count
from imaginarium.models.backend import Backend, Completion
from imaginarium.models.constraint_check import validate_completion
from imaginarium.schemas.records import arrow_schema
from imaginarium.stage import read_rows, write_stage


@pytest.mark.parametrize("target, kept, most, expected", [
    (150, 20, 6, 6),    # round(7.5) - 1 = 7, capped at 6
    (150, 40, 6, 3),    # round(3.75) - 1
    (150, 100, 6, 1),   # round(1.5) - 1
    (150, 200, 6, 0),   # enough seeds already
    (150, 0, 6, 0),     # nothing kept, nothing to paraphrase
])
def test_paraphrases_per_query_follow_the_paper(target, kept, most, expected):
    assert paraphrase_count(target, kept, most) == expected


def seed(trial_id, query, api="get_weather"):
    return {"trial_id": trial_id, "api": api, "episode": int(trial_id[1:]), "slot": 0, "query": query,
            "tools_shown": [api], "final_answer": "3 degrees", "succeeded": True, "reflection": "yes",
            "model": "m", "backend": "b", "seed": 0,
            "steps": [{"thought": "t", "action": "call", "call": {"name": api, "arguments": '{"city": "Oslo"}'},
                       "observation": json.dumps({"content": "3", "status": "ok", "source": "real"}), "parse_error": None},
                      {"thought": "t", "action": "final_answer", "call": None, "observation": None, "parse_error": None}]}


class ScriptedParaphraser(Backend):
    """Stands in for a paraphrasing LLM (none can run here): fixed paraphrases per seed query."""

    name = "scripted"

    def __init__(self, paraphrases):
        super().__init__("scripted")
        self.paraphrases = paraphrases

    def _generate(self, requests):
        completions = []
        for index, request in enumerate(requests):
            prompt = request.messages[-1]["content"]
            query = next(q for q in self.paraphrases if f"Request: {q}\n" in prompt)
            for k, text in enumerate(self.paraphrases[query][: request.n]):
                ok, value, error = validate_completion(request.constraint, text)
                completions.append(Completion(text, "stop" if ok else "invalid", value=value, error=error,
                                              request_index=index, sample_index=k))
        return completions


def test_paraphrases_copy_their_seed_and_duplicates_are_dropped(tmp_path, monkeypatch):
    seeds = [seed("t1", "What is the weather in Oslo today?"), seed("t2", "Convert 5 miles to km", api="convert")]
    write_stage(tmp_path / "kept", "filter", {}, {}, seeds, schema=arrow_schema("episode_trial"),
                extra={"judge_model": "judge-llm", "response_sources": {"real": 2}})
    (tmp_path / "kept" / "funnel.json").write_text('{"input": 9, "steps": []}')
    scripted = ScriptedParaphraser({
        "What is the weather in Oslo today?": ["what is the weather in OSLO today", "Tell me about Oslo's sky today",
                                               "Tell me about Oslo's sky today!"],
        "Convert 5 miles to km": ["How many kilometres are 5 miles?", "5 miles in kilometres, please",
                                  "Give 5 miles as km"],
    })
    config = AugmentConfig.from_flat(dict(target_per_api=4, max_paraphrases=6, semantic=False))
    manifest = augment(tmp_path / "kept", tmp_path / "out", config, backend=scripted, progress=False)
    rows = {r["trial_id"]: r for r in read_rows(tmp_path / "out")}
    # target 4 with 1 kept seed per API: round(4 / 1) - 1 = 3 paraphrases each
    assert manifest["extra"]["paraphrases_per_seed"] == {"convert": 3, "get_weather": 3}
    assert manifest["counts"]["paraphrases_generated"] == 6
    # a case variant of its seed and a punctuation variant of a sibling are exact duplicates
    assert set(rows) == {"t1", "t1/p1", "t2", "t2/p0", "t2/p1", "t2/p2"}
    assert {d["trial_id"]: d["reason"] for d in manifest["extra"]["dropped"]} == {
        "t1/p0": "exact duplicate of t1", "t1/p2": "exact duplicate of t1/p1"}
    paraphrase = rows["t1/p1"]
    assert paraphrase["paraphrase_of"] == "What is the weather in Oslo today?"
    assert paraphrase["query"] == "Tell me about Oslo's sky today"
    assert paraphrase["steps"] == rows["t1"]["steps"] and paraphrase["final_answer"] == rows["t1"]["final_answer"]
    assert rows["t1"]["paraphrase_of"] is None
    # the card facts of the kept trials travel with them; response sources are recounted downstream
    assert json.loads((tmp_path / "out" / "funnel.json").read_text()) == {"input": 9, "steps": []}
    assert manifest["extra"]["judge_model"] == "judge-llm" and manifest["extra"]["funnel"] == {"input": 9, "steps": []}
    assert "response_sources" not in manifest["extra"]


def test_augment_with_the_tiny_model_and_semantic_dedupe(tmp_path, tiny_model):
    seeds = [seed(f"t{i}", q) for i, q in enumerate(["What is the weather in Oslo today?", "Is it raining in Lima?"])]
    write_stage(tmp_path / "kept", "filter", {}, {}, seeds, schema=arrow_schema("episode_trial"))
    config = AugmentConfig.from_flat(dict(target_per_api=6, max_paraphrases=2, max_query_chars=24, model=str(tiny_model)))
    manifest = augment(tmp_path / "kept", tmp_path / "out", config, progress=False)
    rows = read_rows(tmp_path / "out")
    paraphrases = [r for r in rows if r["paraphrase_of"] is not None]
    assert manifest["counts"]["paraphrases_generated"] == 4  # min(round(6 / 2) - 1, 2) = 2 per seed
    for row in paraphrases:
        assert 8 <= len(row["query"]) <= 24 and row["trial_id"].rsplit("/p", 1)[0] in {"t0", "t1"}
    assert {r["trial_id"] for r in rows} >= {"t0", "t1"}  # seeds are always kept over their paraphrases
    assert len({r["query"].lower() for r in rows}) == len(rows)
