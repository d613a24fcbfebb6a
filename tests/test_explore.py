"""STE exploration with the tiny model on the bundled example toolset, executing for real."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from imaginarium.executor.cache import ResponseCache, import_cache
from imaginarium.executor.executor import Executor
from imaginarium.generators.explore import ExploreConfig, Explorer, Trial, explore_stage
from imaginarium.generators.queries import query_constraint
from imaginarium.models.backend import Backend
from imaginarium.schemas.importers import import_files
from imaginarium.stage import read_manifest, read_rows

ROOT = Path(__file__).resolve().parents[1]
TOOLSET = ROOT / "recipes" / "example_toolset"
APIS = ["add_date", "calculator", "get_current_weather"]
SMALL = dict(max_query_chars=24, max_thought_chars=12, max_answer_chars=24, max_argument_chars=12, max_tokens=96)


class RecordingBackend(Backend):
    """Passes requests to a real backend and keeps them, so tests can read the prompts."""

    def __init__(self, inner: Backend):
        super().__init__(inner.model)
        self.inner = inner
        self.name = inner.name
        self.requests = []

    def _generate(self, requests):
        self.requests.extend(requests)
        return self.inner.generate(requests)


@pytest.fixture(scope="module")
def backend(tiny_model):
    from imaginarium.models.factory import make_backend

    return make_backend("transformers", str(tiny_model))


@pytest.fixture(scope="module")
def toolset(tmp_path_factory):
    tools, _ = import_files([TOOLSET / "python_tools.json", TOOLSET / "openapi.yaml"])
    tools_path = tmp_path_factory.mktemp("toolset") / "tools.jsonl"
    tools_path.write_text("".join(t.to_json() + "\n" for t in tools))
    cache_path = tools_path.parent / "cache.sqlite"
    import_cache(TOOLSET / "cache.jsonl", cache_path)
    return tools, tools_path, cache_path


def run(tmp_path, backend, toolset, **config):
    tools, tools_path, cache_path = toolset
    recording = RecordingBackend(backend)
    options = dict(SMALL, episodes=2, stm_slots=2, max_turns=2) | config
    with ResponseCache(cache_path) as cache:
        executor = Executor(tools, cache, "replay")
        explore_stage(tmp_path / "out", tools_path, tools, APIS, recording, executor, ExploreConfig.from_flat(options),
                      progress=False)
    return read_rows(tmp_path / "out"), recording


def imagination_prompts(recording, config):
    constraint = query_constraint(config.max_query_chars)
    return [r for r in recording.requests if r.constraint == constraint]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, backend, toolset):
    return run(tmp_path_factory.mktemp("baseline"), backend, toolset)


def test_every_api_gets_its_trials_and_every_call_is_valid(baseline, toolset):
    rows, _ = baseline
    tools = {t.name: t for t in toolset[0]}
    assert Counter(r["api"] for r in rows) == dict.fromkeys(APIS, 4)
    assert len({r["trial_id"] for r in rows}) == len(rows)
    calls = [s for r in rows for s in r["steps"] if s["action"] == "call"]
    assert calls, "the tiny model made no call at all"
    for step in calls:
        arguments = json.loads(step["call"]["arguments"])
        jsonschema.validate(arguments, tools[step["call"]["name"]].parameters)
        observation = json.loads(step["observation"])
        assert observation["status"] in ("ok", "error") and "content" in observation


def test_max_turns_holds(baseline):
    rows, _ = baseline
    for row in rows:
        assert sum(s["action"] == "call" for s in row["steps"]) <= 2
        assert sum(s["action"] in ("call", "invalid") for s in row["steps"]) <= 3


def test_imagination_sees_all_earlier_queries_of_its_api_with_labels(baseline, toolset):
    rows, recording = baseline
    prompts = imagination_prompts(recording, ExploreConfig.from_flat(SMALL))
    descriptions = {t.name: t.description for t in toolset[0] if t.name in APIS}
    by_api = {api: [] for api in APIS}
    for request in prompts:
        # a prompt of its own: the writer's role and the tool, not the acting prompt nor the episode
        assert [m["role"] for m in request.messages] == ["system", "user"]
        assert "To call a tool" not in request.messages[0]["content"]
        text = request.messages[-1]["content"]
        api = next(a for a in APIS if descriptions[a] in text)
        by_api[api].append(text)
    for api, texts in by_api.items():
        trials = sorted((r for r in rows if r["api"] == api), key=lambda r: (r["episode"], r["slot"]))
        assert len(texts) == len(trials)
        for n, text in enumerate(texts):
            for earlier in trials[:n]:
                label = "no answer" if earlier["final_answer"] is None else ("yes" if earlier["succeeded"] else "no")
                assert f"- {earlier['query']} (solved: {label})" in text
            for later in trials[n:]:
                assert f"- {later['query']} (solved:" not in text


def test_later_trials_of_an_episode_see_the_earlier_ones(baseline):
    rows, recording = baseline
    first = next(r for r in rows if r["api"] == "add_date" and r["episode"] == 0 and r["slot"] == 0)
    second = next(r for r in rows if r["api"] == "add_date" and r["episode"] == 0 and r["slot"] == 1)
    other_episode = next(r for r in rows if r["api"] == "add_date" and r["episode"] == 1 and r["slot"] == 0)

    queries = {r["query"] for r in rows}

    def act_requests_for(trial):
        """Act requests whose latest query turn is this trial's."""
        found = []
        for request in recording.requests:
            turns = [m["content"] for m in request.messages if m["role"] == "user" and m["content"] in queries]
            is_act = request.constraint.kind == "json"
            if is_act and turns and turns[-1] == trial["query"]:
                found.append(request)
        return found

    assert act_requests_for(first) and act_requests_for(second) and act_requests_for(other_episode)
    for request in act_requests_for(second):
        contents = [m["content"] for m in request.messages]
        assert first["query"] in contents  # STM: the earlier trial's turns are in the conversation
        if first["final_answer"] is not None:
            assert any(first["final_answer"] in c for c in contents if c)
    for request in act_requests_for(first) + act_requests_for(other_episode):
        contents = [m["content"] for m in request.messages]
        assert second["query"] not in contents
    for request in act_requests_for(other_episode):
        assert first["query"] not in [m["content"] for m in request.messages]


def test_rerun_with_same_inputs_is_a_noop(tmp_path, backend, toolset):
    rows, recording = run(tmp_path, backend, toolset, episodes=1, stm_slots=1)
    again, recording_again = run(tmp_path, backend, toolset, episodes=1, stm_slots=1)
    assert recording.requests and not recording_again.requests
    assert again == rows


def test_ablation_no_exec_withholds_observations(tmp_path, backend, toolset):
    rows, recording = run(tmp_path, backend, toolset, no_exec=True)
    calls = [s for r in rows for s in r["steps"] if s["action"] == "call"]
    assert calls and all(s["observation"] is None for s in calls)
    tool_messages = [m for r in recording.requests for m in r.messages if m["role"] == "tool"]
    assert tool_messages and all(m["content"] == "The call was made. Its result is not shown." for m in tool_messages)


def test_ablation_no_stm_runs_one_trial_per_episode(tmp_path, backend, toolset):
    rows, _ = run(tmp_path, backend, toolset, no_stm=True)
    assert {r["slot"] for r in rows} == {0}
    assert Counter(r["api"] for r in rows) == dict.fromkeys(APIS, 2)


def test_ablation_no_ltm_hides_earlier_queries(tmp_path, backend, toolset):
    _rows, recording = run(tmp_path, backend, toolset, no_ltm=True)
    for request in imagination_prompts(recording, ExploreConfig.from_flat(SMALL)):
        assert "already been explored" not in request.messages[-1]["content"]
        assert "(solved:" not in request.messages[-1]["content"]


def test_ablation_no_reflection_labels_every_answered_trial_successful(tmp_path, backend, toolset):
    rows, recording = run(tmp_path, backend, toolset, no_reflection=True)
    assert all(r["succeeded"] for r in rows if r["final_answer"] is not None)
    assert all(r["reflection"] is None for r in rows)
    assert not [r for r in recording.requests if r.constraint and r.constraint.kind == "choice"]


def test_parallel_episodes_run_side_by_side_and_mark_queries_in_flight(tmp_path, backend, toolset):
    rows, recording = run(tmp_path, backend, toolset, parallel_episodes=2, stm_slots=1)
    assert Counter(r["api"] for r in rows) == dict.fromkeys(APIS, 2)
    constraint = query_constraint(SMALL["max_query_chars"])
    first_round = recording.requests[: len(APIS) * 2]  # both episodes of every API imagine at once
    assert all(r.constraint == constraint for r in first_round)

    explorer = Explorer(toolset[0], APIS, backend, None, ExploreConfig.from_flat(dict(SMALL, parallel_episodes=2)))
    done = Trial("add_date", 0, 0, ["add_date"], query="What is 3 days after May 1?", final_answer="May 4",
                 succeeded=True, phase="done")
    explorer.memory[("add_date", "single")].append(done)
    in_flight = Trial("add_date", 1, 0, ["add_date"], query="Add a week to 2024-01-01", phase="act")
    items = explorer.memory_items("add_date", [in_flight, Trial("add_date", 2, 0, ["add_date"])])
    assert items == [{"query": "What is 3 days after May 1?", "label": "yes"},
                     {"query": "Add a week to 2024-01-01", "label": "in progress"}]


KILLABLE = textwrap.dedent(
    """
    import sys
    from imaginarium.executor.cache import ResponseCache
    from imaginarium.executor.executor import Executor
    from imaginarium.models.factory import make_backend
    from imaginarium.generators.explore import ExploreConfig, explore_stage
    from imaginarium.schemas.toolspec import read_tools

    model, tools_path, cache_path, out = sys.argv[1:5]
    tools = read_tools(tools_path)
    config = ExploreConfig.from_flat(dict(episodes=3, stm_slots=2, max_turns=1, max_query_chars=16, max_thought_chars=8,
                                          max_answer_chars=16, max_argument_chars=8, max_tokens=64))
    with ResponseCache(cache_path) as cache:
        explore_stage(out, tools_path, tools, ["add_date", "calculator"], make_backend("transformers", model),
                      Executor(tools, cache, "replay"), config, progress=False)
    """
)


def test_sigkill_mid_run_then_resume_gives_every_trial_once(tmp_path, tiny_model, toolset):
    _, tools_path, cache_path = toolset
    script = tmp_path / "explore.py"
    script.write_text(KILLABLE)
    out = tmp_path / "out"
    command = [sys.executable, str(script), str(tiny_model), str(tools_path), str(cache_path), str(out)]
    env = dict(os.environ, TORCHDYNAMO_DISABLE="1")
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(command, env=env, stderr=stderr)
        deadline = time.time() + 300
        while (time.time() < deadline and proc.poll() is None
               and len(list((out / ".progress").glob("chunk-*.parquet"))) < 2):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert read_manifest(out) is None, "the run finished before it could be killed"
    assert list((out / ".progress").glob("chunk-*.parquet")), log.read_text()[-3000:]

    subprocess.run(command, env=env, check=True, capture_output=True)
    rows = read_rows(out)
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 2 * 3 * 2
    assert sorted(ids) == sorted(f"{api}/{e}/{s}" for api in ("add_date", "calculator") for e in range(3) for s in range(2))
