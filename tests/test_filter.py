"""The filter stage on hand-made trials with known answers: what it keeps, drops, and why."""

import json

import pyarrow.parquet as pq
import pytest

from imaginarium.filters.filter import FilterConfig, filter_stage
from imaginarium.models.backend import Backend, Completion
from imaginarium.models.constraint_check import validate_completion
from imaginarium.schemas.records import arrow_schema
from imaginarium.stage import read_manifest, read_rows, write_stage


def observation(status="ok", source="real", error_kind=None, content="{}"):
    return json.dumps({"content": content, "status": status, "source": source, "latency_ms": 1.0,
                       "error_kind": error_kind, "truncated": False, "untrusted": False})


def call(obs, name="get_weather", arguments='{"city": "Oslo"}'):
    return {"thought": "call it", "action": "call", "call": {"name": name, "arguments": arguments},
            "observation": obs, "parse_error": None}


FINAL = {"thought": "done", "action": "final_answer", "call": None, "observation": None, "parse_error": None}


def trial(trial_id, query, steps, final_answer="It is 3 degrees in Oslo.", api="get_weather", succeeded=True):
    episode, slot = int(trial_id[1:]), 0
    return {"trial_id": trial_id, "api": api, "episode": episode, "slot": slot, "query": query,
            "tools_shown": [api], "steps": steps, "final_answer": final_answer, "succeeded": succeeded,
            "reflection": "yes", "model": "m", "backend": "b", "seed": 0}


TRIALS = [
    trial("t1", "Weather in Oslo now?", [call(observation())], final_answer=None, succeeded=None),
    trial("t2", "Is it cold in Bergen?", [FINAL]),
    trial("t3", "Weather for Tromso please", [call(observation("error", error_kind="http_status")), FINAL]),
    trial("t4", "How warm is it in Lima?", [call(observation(source="simulated")), FINAL]),
    trial("t5", "What is the weather in Oslo right now?", [call(observation("error", error_kind="timeout")),
                                                          call(observation(source="cached")), FINAL]),
    trial("t6", "Current temperature in Paris?", [call(observation()), FINAL]),
    trial("t7", "what is the WEATHER in oslo, right now", [call(observation()), FINAL]),
    trial("t8", "Convert 3 km to miles", [call(observation(), name="convert"), FINAL], api="convert"),
]


class ScriptedJudge(Backend):
    """Stands in for a judge LLM (none can run here): answers a verdict per query, validated for real."""

    name = "scripted"

    def __init__(self, verdicts):
        super().__init__("scripted-judge")
        self.verdicts = verdicts
        self.seen = []

    def _generate(self, requests):
        completions = []
        for request in requests:
            text = request.messages[-1]["content"]
            self.seen.append(text)
            verdict = next(v for q, v in self.verdicts.items() if f"Query: {q}" in text)
            body = json.dumps({a: {"reason": r, "verdict": "yes" if r == "ok" else "no"}
                               for a, r in zip(("informative", "faithful", "appropriate"), verdict)})
            ok, value, error = validate_completion(request.constraint, body)
            completions.append(Completion(body, "stop" if ok else "invalid", value=value, error=error))
        return completions


VERDICTS = {
    "How warm is it in Lima?": ("ok", "ok", "ok"),
    "What is the weather in Oslo right now?": ("ok", "ok", "ok"),
    "Current temperature in Paris?": ("ok", "answer says sunny, tool said rain", "ok"),
    "what is the WEATHER in oslo, right now": ("ok", "ok", "ok"),
    "Convert 3 km to miles": ("ok", "ok", "ok"),
}


@pytest.fixture
def trials_dir(tmp_path):
    write_stage(tmp_path / "explore", "explore", {}, {}, TRIALS, schema=arrow_schema("episode_trial"))
    return tmp_path / "explore"


def run_filter(tmp_path, trials_dir, monkeypatch, judge_backend, **options):
    config = FilterConfig.from_flat(dict(semantic=False, batch_size=3, **options))
    return filter_stage(trials_dir, tmp_path / "out", config, backend=judge_backend, progress=False)


def dropped(tmp_path):
    return {r["trial_id"]: (r["step"], r["reason"]) for r in pq.read_table(tmp_path / "out" / "dropped.parquet").to_pylist()}


def test_each_step_keeps_and_drops_exactly_what_it_should(tmp_path, trials_dir, monkeypatch):
    judge = ScriptedJudge(VERDICTS)
    manifest = run_filter(tmp_path, trials_dir, monkeypatch, judge)
    assert [r["trial_id"] for r in read_rows(tmp_path / "out")] == ["t8", "t4", "t5"]
    assert dropped(tmp_path) == {
        "t1": ("final_answer", "no final answer"),
        "t2": ("executed", "made no tool call"),
        "t3": ("executed", "every call failed (http_status x1)"),
        "t6": ("judge", "not faithful: answer says sunny, tool said rain"),
        "t7": ("dedupe", "exact duplicate of t5"),
    }
    assert len(judge.seen) == 5  # only trials that passed the cheap checks are judged
    funnel = json.loads((tmp_path / "out" / "funnel.json").read_text())
    assert funnel == manifest["extra"]["funnel"]
    assert funnel["input"] == 8
    assert [(s["name"], s["kept"], s["dropped"]) for s in funnel["steps"]] == [
        ("final_answer", 7, {"no final answer": 1}),
        ("executed", 5, {"made no tool call": 1, "every call failed": 1}),
        ("judge", 4, {"not faithful": 1}),
        ("dedupe", 3, {"exact duplicate of t5": 1}),
    ]
    assert funnel["per_api"]["get_weather"] == {"input": 7, "kept": 2, "after": {
        "final_answer": 6, "executed": 4, "judge": 3, "dedupe": 2}}
    assert funnel["per_api"]["convert"]["kept"] == 1
    kept = {r["trial_id"]: json.loads(r["scores"]) for r in read_rows(tmp_path / "out")}
    assert kept["t5"]["judge"]["faithful"] == {"reason": "ok", "verdict": "yes"}
    assert manifest["extra"]["response_sources"] == {"cached": 1, "real": 2, "simulated": 1}
    assert manifest["extra"]["judge_model"] == "scripted-judge"


def test_simulated_only_successes_can_be_refused(tmp_path, trials_dir, monkeypatch):
    run_filter(tmp_path, trials_dir, monkeypatch, ScriptedJudge(VERDICTS), simulated_ok=False)
    assert dropped(tmp_path)["t4"] == ("executed", "only simulated responses succeeded")


def test_required_aspects_are_configurable_and_judge_can_be_off(tmp_path, trials_dir, monkeypatch):
    run_filter(tmp_path, trials_dir, monkeypatch, ScriptedJudge(VERDICTS), require="informative,appropriate")
    assert "t6" in {r["trial_id"] for r in read_rows(tmp_path / "out")}
    manifest = filter_stage(trials_dir, tmp_path / "nojudge", FilterConfig.from_flat(dict(judge=False, semantic=False)),
                            progress=False)
    assert [s["name"] for s in manifest["extra"]["funnel"]["steps"]] == ["final_answer", "executed", "dedupe"]
    assert "judge_model" not in manifest["extra"]


def test_rerun_is_a_noop_and_judges_nothing(tmp_path, trials_dir, monkeypatch):
    first = run_filter(tmp_path, trials_dir, monkeypatch, ScriptedJudge(VERDICTS))
    again_judge = ScriptedJudge(VERDICTS)
    again = run_filter(tmp_path, trials_dir, monkeypatch, again_judge)
    assert again == first and again_judge.seen == []
    assert read_manifest(tmp_path / "out")["counts"]["kept"] == 3


def test_the_tiny_model_judges_through_the_real_backend(tmp_path, trials_dir, tiny_model):
    config = FilterConfig.from_flat(dict(model=str(tiny_model), semantic=False))
    manifest = filter_stage(trials_dir, tmp_path / "out", config, progress=False)
    judged = [json.loads(r["scores"]) for r in read_rows(tmp_path / "out")]
    reasons = dropped(tmp_path)
    # a random model's verdicts are random, but each is either a valid verdict or a named failure
    for _trial_id, (step, reason) in reasons.items():
        if step == "judge":
            assert reason.startswith("not ") or reason == "the judge gave no valid verdict"
    for scores in judged:
        assert all(scores["judge"][a]["verdict"] == "yes" for a in ("informative", "faithful", "appropriate"))
    assert manifest["counts"]["kept"] + manifest["counts"]["dropped"] == len(TRIALS)


class AtMostOneCall:
    """A check written the way a user would add one: a name, from_config, check over a batch."""

    name = "one_call"

    @classmethod
    def from_config(cls, config, backend):
        return cls()

    def check(self, trials):
        from imaginarium.filters.checks import KEEP, Outcome

        return [KEEP if len(t.calls) <= 1 else Outcome(f"made {len(t.calls)} calls") for t in trials]


def test_a_new_check_is_one_class_and_one_line(tmp_path, trials_dir, monkeypatch):
    from imaginarium.filters import checks

    default = checks._checks
    monkeypatch.setattr(checks, "_checks", lambda: [*default()[:2], AtMostOneCall])
    manifest = filter_stage(trials_dir, tmp_path / "out", FilterConfig.from_flat(dict(judge=False, semantic=False)),
                            progress=False)
    assert dropped(tmp_path)["t5"] == ("one_call", "made 2 calls")
    steps = manifest["extra"]["funnel"]["steps"]
    assert [(s["name"], s["kept"]) for s in steps] == [("final_answer", 7), ("executed", 5), ("one_call", 4), ("dedupe", 4)]
    assert checks.check_names() == ["final_answer", "executed", "one_call"]


def test_kept_rows_are_the_input_rows_plus_their_scores(tmp_path, trials_dir, monkeypatch):
    run_filter(tmp_path, trials_dir, monkeypatch, ScriptedJudge(VERDICTS))
    given = {t["trial_id"]: t for t in TRIALS}
    for row in read_rows(tmp_path / "out"):
        scores = json.loads(row.pop("scores"))
        assert set(scores) == {"judge"}
        assert _as_given(row, given[row["trial_id"]]) == given[row["trial_id"]]


def _as_given(row, given):
    """`row` without the optional record fields the given row did not have and that came back
    null (`paraphrase_of`, the scenario kinds' `kind`, `scenario`, and the steps' `text`, `parallel`)."""
    out = {k: v for k, v in row.items() if k in given or v is not None}
    out.pop("paraphrase_of", None)
    if "steps" in out:
        out["steps"] = [{k: v for k, v in step.items() if v is not None or k in given_step}
                        for step, given_step in zip(out["steps"], given["steps"])]
    return out


def test_reports_of_the_input_travel_with_the_kept_rows(tmp_path, trials_dir, monkeypatch):
    quality = {"trials": 8, "with_ok_call": 0.75}
    (trials_dir / "quality.json").write_text(json.dumps(quality))
    run_filter(tmp_path, trials_dir, monkeypatch, ScriptedJudge(VERDICTS))
    assert json.loads((tmp_path / "out" / "quality.json").read_text()) == quality
