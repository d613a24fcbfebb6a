"""STE exploration: imagine a query, try to solve it with real calls, reflect; repeat.

Per API, `episodes` episodes; per episode, `stm_slots` trials in one growing conversation
(short-term memory: a later trial sees the earlier ones). Each trial:

1. imagine: the model sees the API's documentation and, from long-term memory, every query
   already explored for this API with its label, and writes a new query (one line of text,
   bounded); a query that repeats an explored one is imagined again (`reimagine` times);
2. act: a JSON object that either calls one of the tools shown (the call follows that tool's
   JSON Schema, so it is valid by construction) or gives the final answer (the first step must
   call, unless `call_first` is off); calls are executed and the observation appended, up to
   `max_turns` calls, after which only an answer is allowed;
3. reflect: did the answer fulfil the query? (a yes/no choice);
4. the query and its label enter long-term memory.

Throughput: every API is explored at once. Each round collects the next step of every active
trial into ONE backend call, then executes all the calls made in that round together. Within an
API, `parallel_episodes` episodes run side by side (default 1). With 1, every imagination sees
every earlier query of its API with its label, exactly as in the paper. With more, episodes of
one API advance together and an imagination also sees the queries still in flight, marked
"in progress", so they are not repeated either.

Checkpointing: the trials finished in a round are appended as one durable chunk (stage
directory API). On resume, long-term memory and the conversations of unfinished episodes are
rebuilt from the written trials, so nothing is lost and nothing is redone.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from imaginarium.card_facts import CardFacts
from imaginarium.engine import EngineOptions, RayEngine
from imaginarium.errors import InputError
from imaginarium.executor.options import ExecutionOptions
from imaginarium.filters.dedupe import normalise_query
from imaginarium.generators.quality import exploration_quality
from imaginarium.generators.queries import query_constraint, unframed_query
from imaginarium.jsonutil import canonical_json
from imaginarium.models.backend import Backend, Constraint, GenerationRequest
from imaginarium.models.options import GenerationOptions
from imaginarium.options import Options, comma_list
from imaginarium.prompts import Prompts
from imaginarium.schemas.constraints import call_schema, other_than
from imaginarium.schemas.kinds import DEFAULT_KINDS, NO_CALL_KINDS, assign_kinds, kind_problem, parse_kinds
from imaginarium.schemas.records import arrow_schema
from imaginarium.schemas.rows import Call, Step, TrialRecord
from imaginarium.schemas.toolspec import ToolSpec, tool_doc
from imaginarium.stage import StageWriter, read_manifest

TEMPLATES = Path(__file__).parent / "templates"
MAX_PARALLEL = 3  # calls in one parallel step
REFLECT_KINDS = ("irrelevant", "clarify", "parallel", "multi_turn")  # kinds with a reflection prompt of their own

log = logging.getLogger(__name__)


def _explore_generation() -> GenerationOptions:
    # Sampling defaults of exploration: varied enough for new queries, calm enough that a small
    # model stays on topic (at 1.0 SmolLM2-135M drifts into other languages and markup).
    return GenerationOptions(temperature=0.7, top_p=0.9)


class ExploreConfig(Options):
    """Everything that shapes an exploration run (its fingerprint, apart from addresses and keys)."""

    generation: GenerationOptions = Field(default_factory=_explore_generation)
    execution: ExecutionOptions = Field(default_factory=ExecutionOptions)
    scale: EngineOptions = Field(default_factory=EngineOptions)
    apis: list[str] | None = Field(None, min_length=1, description="APIs to explore (tool names or source names). Default: every tool.")
    apis_file: Path | None = Field(None, json_schema_extra={"fingerprint": False, "exists": True},
                                   description="File of API names: a JSON list (like STE's API_list.json) or one per line.")
    episodes: int = Field(15, ge=1, le=100_000, description="Episodes per API.")
    stm_slots: int = Field(3, ge=1, le=1000, description="Trials per episode (short-term memory).")
    max_turns: int = Field(4, ge=0, le=100, description="Most tool calls per trial.")
    parallel_episodes: int = Field(1, ge=1, le=1000, description=(
        "Episodes of one API explored side by side (1: every imagination sees all earlier queries)."))
    distractors: int = Field(0, ge=0, le=100, description=(
        "Also show the K tools with the nearest descriptions (embeddings) as distractors."))
    max_query_chars: int = Field(200, ge=16, le=10_000, description="Longest imagined query.")
    max_thought_chars: int = Field(160, ge=0, le=10_000, description="Longest thought before a step.")
    max_answer_chars: int = Field(300, ge=1, le=100_000, description="Longest final answer.")
    max_argument_chars: int = Field(64, ge=1, le=100_000, description=(
        "Longest free-text argument value (constrained decoders need a bound to terminate)."))
    call_first: bool = Field(True, description=(
        "The first step of a trial must call a tool (the query was imagined for it; small models otherwise "
        "answer from their own knowledge). --no-call-first lets the model answer at once, as in the paper."))
    reimagine: int = Field(2, ge=0, le=20, description=(
        "Long-term memory's guard: a query that repeats an explored one (exactly, or nearly by embeddings) is "
        "imagined again with a fresh seed, up to this many times (0: the prompt alone, as in the paper); a call "
        "that repeats another of its parallel turn is asked for again as often, constrained to other values."))
    repeat_threshold: float | None = Field(0.9, gt=0, le=1, description=(
        "Cosine similarity of sentence embeddings at or above which a query counts as a near repeat."))
    reimagine_heat: float = Field(0.2, ge=0, le=2, description="Temperature added per attempt when a query is imagined again.")
    no_exec: bool = Field(False, description="Ablation: withhold execution feedback.")
    no_stm: bool = Field(False, description="Ablation: one trial per episode (no short-term memory).")
    no_ltm: bool = Field(False, description="Ablation: no long-term memory in the imagination prompt.")
    no_reflection: bool = Field(False, description="Ablation: label every trial successful.")
    templates: Path | None = Field(None, json_schema_extra={"fingerprint": False, "exists": True}, description=(
        "Folder overriding prompt templates (explore/system.j2, imagine.j2, imagine_system.j2, reflect.j2, withheld.j2, "
        "and per kind imagine_<kind>.j2, reflect_<kind>.j2, user_reply.j2, follow_up.j2)."))
    kinds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_KINDS), description=(
        "Scenario kinds and their weights, e.g. single=0.5,parallel=0.15,multiple=0.15,irrelevant=0.1,clarify=0.1 "
        "(also multi_turn); one kind per episode. single alone is STE exactly."))
    kind_tools: int = Field(3, ge=1, le=20, description="Nearest tools shown beside the API in `multiple` trials.")

    _lists = field_validator("apis", mode="before")(comma_list)

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds(cls, value: Any) -> dict[str, float]:
        return parse_kinds(value)

    @property
    def slots(self) -> int:
        """Trials per episode: `stm_slots`, or 1 without short-term memory."""
        return 1 if self.no_stm else self.stm_slots


# -- schemas of the three generation steps -----------------------------------------------------
def act_schema(tools: list[ToolSpec], config: ExploreConfig, *, allow_call: bool,
               allow_answer: bool = True, parallel: bool = False, ask: list[str] | None = None,
               ask_only: bool = False) -> dict[str, Any]:
    """One step: a thought and a call of one of `tools` or the final answer (or both kinds).

    `parallel`: the step is a list of 2 to MAX_PARALLEL calls made at once (and nothing else);
    `ask`: a clarifying question is allowed too, one that names one of these parameters (a
    pattern the decoder enforces, so the question says what it asks for); `ask_only`: nothing else."""
    thought = {"type": "string", "maxLength": config.max_thought_chars}
    answer = _object({"thought": thought, "final_answer": {"type": "string", "minLength": 1, "maxLength": config.max_answer_chars}})
    if not allow_call or not tools:
        return answer
    calls = [call_schema(tool, max_string_length=config.max_argument_chars) for tool in tools]
    one = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if parallel:
        return _object({"thought": thought, "calls": {"type": "array", "items": one, "minItems": 2, "maxItems": MAX_PARALLEL}})
    call = _object({"thought": thought, "call": one})
    options = [] if ask and ask_only else [call]
    if ask:
        names = "|".join(re.escape(name.replace("_", " ")) for name in ask)
        question = {"type": "string", "pattern": f"^[^\\n]{{0,60}}({names})[^\\n]{{0,60}}\\?$"}
        options.append(_object({"thought": thought, "ask": question}))
    if allow_answer:
        options.append(answer)
    return options[0] if len(options) == 1 else {"anyOf": options}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


# -- state ---------------------------------------------------------------------------------------
@dataclass
class Trial:
    """One trial in progress; becomes an episode-trial record when done."""

    api: str
    episode: int
    slot: int
    tools_shown: list[str]
    query: str | None = None
    steps: list[Step] = field(default_factory=list)
    final_answer: str | None = None
    succeeded: bool | None = None
    reflection: str | None = None
    phase: str = "imagine"  # imagine -> act [-> reply -> act] [-> follow_up -> act] [-> rejected] -> reflect -> done
    reimagined: int = 0  # queries rejected as repeats of earlier ones (long-term memory guard)
    resampled: int = 0  # calls asked for again because they repeated another of their parallel turn
    pending: list[dict[str, Any]] | None = None  # a parallel turn's calls while its repeats are replaced
    pending_thought: str | None = None
    pending_target: int = 0
    kind: str = "single"
    missing: str | None = None        # clarify: the required parameter the query leaves out
    rejected_call: dict[str, Any] | None = None  # irrelevant, clarify: a call sampled where none is right

    @property
    def trial_id(self) -> str:
        return f"{self.api}/{self.episode}/{self.slot}"

    def _this_turn(self) -> list[Step]:
        """The steps since the last user message (a clarification's reply, a follow-up)."""
        users = [i for i, step in enumerate(self.steps) if step.action == "user"]
        return self.steps[users[-1] + 1:] if users else self.steps

    @property
    def calls_made(self) -> int:
        """Steps of this user turn that used a turn: calls, and outputs that did not parse."""
        return sum(1 for step in self._this_turn() if step.action in ("call", "invalid"))

    @property
    def calls_executed(self) -> int:
        return sum(1 for step in self._this_turn() if step.action == "call")

    def record(self, backend: Backend, seed: int) -> dict[str, Any]:
        facts = {key: value for key, value in (("missing", self.missing), ("rejected_call", self.rejected_call)) if value}
        return {
            "trial_id": self.trial_id, "api": self.api, "episode": self.episode, "slot": self.slot,
            "query": self.query or "", "tools_shown": self.tools_shown, "steps": [step.to_row() for step in self.steps],
            "final_answer": self.final_answer, "succeeded": self.succeeded, "reflection": self.reflection,
            "model": backend.model, "backend": backend.name, "seed": seed,
            "kind": self.kind, "scenario": json.dumps(facts, ensure_ascii=False, sort_keys=True) if facts else None,
        }

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Trial:
        facts = json.loads(row["scenario"]) if row.get("scenario") else {}
        return cls(
            api=row["api"], episode=row["episode"], slot=row["slot"], tools_shown=list(row["tools_shown"]),
            query=row["query"], steps=[Step.from_row(step) for step in row["steps"]], final_answer=row["final_answer"],
            succeeded=row["succeeded"], reflection=row["reflection"], phase="done", kind=row.get("kind") or "single",
            missing=facts.get("missing"), rejected_call=facts.get("rejected_call"),
        )


@dataclass
class Episode:
    """An episode: its finished trials (the short-term memory) and the trial in progress."""

    api: str
    index: int
    done: list[Trial] = field(default_factory=list)
    current: Trial | None = None
    kind: str = "single"  # every trial of an episode has its kind: one system message, one memory


class Explorer:
    """Runs the exploration of many APIs at once against one backend and one executor."""

    def __init__(self, tools: list[ToolSpec], apis: list[str], backend: Backend, executor, config: ExploreConfig,
                 *, distractors: dict[str, list[str]] | None = None, neighbours: dict[str, list[str]] | None = None,
                 progress: bool = True, episode_kinds: dict[str, str] | None = None):
        self.tools = {tool.name: tool for tool in tools}
        self.apis = apis
        self.backend = backend
        self.executor = executor
        self.config = config
        self.distractors = distractors or {}  # api -> the other tools shown with it
        self.neighbours = neighbours or {}  # api -> its nearest tools, shown in `multiple` trials
        self.prompts = Prompts(TEMPLATES, "explore", config.templates)
        self.progress = progress
        # long-term memory per API and kind: a kind's queries differ in purpose, so each kind
        # keeps its own (with `single` alone, that is the paper's memory per API)
        self.memory: dict[tuple[str, str], list[Trial]] = defaultdict(list)
        self._schemas: dict[tuple, dict[str, Any]] = {}
        # every episode's kind, decided for the whole run at once (a shard of a Ray run is handed
        # the whole run's plan, so its episodes get the kinds they get in one process)
        self.episode_kinds = episode_kinds if episode_kinds is not None else plan_kinds(self.tools, apis, config)
        self.reimagined = 0  # queries rejected as repeats, this run
        self.stats: dict[str, Any] = {}  # the last run's figures (see `rounds`)
        self._repeats = RepeatGuard(config.repeat_threshold)

    # -- prompts ---------------------------------------------------------------------------------
    def shown_tools(self, api: str, kind: str = "single") -> list[ToolSpec]:
        others = self.neighbours.get(api, []) if kind == "multiple" else []
        names = [api] + [n for n in [*self.distractors.get(api, []), *others] if n in self.tools and n != api]
        return [self.tools[name] for name in dict.fromkeys(names)]

    def system_message(self, api: str, kind: str = "single") -> dict[str, Any]:
        shown = self.shown_tools(api, kind)
        text = self.prompts.render("system", tool_doc=tool_doc(shown[0]), distractors=[tool_doc(t) for t in shown[1:]],
                                   kind=kind)
        return {"role": "system", "content": text}

    def trial_messages(self, trial: Trial) -> list[dict[str, Any]]:
        """The conversation turns of a trial, rebuilt from its record (used for STM and resume)."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": trial.query or ""}]
        steps = trial.steps
        for index, step in enumerate(steps):
            if step.is_call and step.parallel:
                continue  # shown with the first call of its turn
            if step.is_call:
                assert step.call is not None
                turn = [step, *itertools.takewhile(lambda s: s.is_call and s.parallel, steps[index + 1:])]
                calls = [{"name": s.call.name, "arguments": s.call.args} for s in turn if s.call is not None]
                shown = {"thought": step.thought, "calls": calls} if len(turn) > 1 else {"thought": step.thought, "call": calls[0]}
                messages.append({"role": "assistant", "content": _step_text(shown)})
                for done, call in zip(turn, calls):
                    content = self.prompts.render("withheld") if done.observation is None else done.observation.content
                    messages.append({"role": "tool", "name": call["name"], "content": content})
            elif step.action == "ask":
                messages.append({"role": "assistant", "content": _step_text({"thought": step.thought, "ask": step.text})})
            elif step.action == "user":
                messages.append({"role": "user", "content": step.text or ""})
            elif step.action == "final_answer":
                answer = step.text if step.text is not None else trial.final_answer
                messages.append({"role": "assistant", "content": _step_text(
                    {"thought": step.thought, "final_answer": answer})})
            else:  # an output that did not parse: the model sees its error
                messages.append({"role": "assistant", "content": step.thought or ""})
                messages.append({"role": "user", "content": f"That was not a valid step: {step.parse_error}"})
        if trial.reflection is not None:
            messages.append({"role": "user", "content": self.prompts.render("reflect")})
            messages.append({"role": "assistant", "content": trial.reflection})
        return messages

    def conversation(self, episode: Episode) -> list[dict[str, Any]]:
        messages = [self.system_message(episode.api, episode.kind)]
        for trial in episode.done:
            messages += self.trial_messages(trial)
        return messages

    def memory_items(self, api: str, in_flight: Iterable[Trial], kind: str = "single") -> list[dict[str, str]]:
        if self.config.no_ltm:
            return []
        items = [{"query": t.query or "", "label": _label(t)} for t in self.memory[(api, kind)]]
        items += [{"query": t.query, "label": "in progress"} for t in in_flight if t.query and t.kind == kind]
        return items

    # -- one round -------------------------------------------------------------------------------
    def request_for(self, episode: Episode, in_flight: list[Trial]) -> GenerationRequest:
        trial = episode.current
        assert trial is not None, "an active episode always has a trial in progress"
        config = self.config
        retries = trial.reimagined if trial.phase == "imagine" else trial.resampled if trial.phase == "distinct" else 0
        phase = f"{trial.phase}#{retries}" if retries else trial.phase
        seed = _seed(config.generation.seed, trial.trial_id, len(trial.steps), phase)
        temperature = config.generation.temperature
        if retries:
            temperature = min(1.0, temperature + config.reimagine_heat * retries)
        # The tools are documented in the system message only, not also passed as the chat
        # template's `tools`: a model's native tool block would describe them a second time and
        # often prescribe its own call syntax, which the act format does not use. Every step of
        # an episode starts with the same system message and conversation, so engines with
        # prefix caching (vLLM, the transformers backend) compute that prefix once.
        sampling: dict[str, Any] = dict(max_tokens=config.generation.max_tokens, temperature=temperature,
                                         top_p=config.generation.top_p, seed=seed)
        if trial.phase == "imagine":
            # Imagination is a prompt of its own: a system message that gives the model the
            # writer's role, then what the tool does, what it takes, and long-term memory (every
            # query explored for this API and kind, this episode's included, with its label). Not
            # the episode's conversation, nor the acting system prompt: a model told it is the
            # assistant and then asked to play the user writes about the conversation ("I'm
            # ready to help. What's your question?") instead of a query. Each kind has its own
            # prompt (imagine_<kind>.j2; `single` and `multiple` share imagine.j2).
            tool = self.tools[trial.api]
            template = "imagine" if trial.kind in ("single", "multiple") else f"imagine_{trial.kind}"
            prompt = self.prompts.render(
                template, tool_name=trial.api, description=tool.description or trial.api, inputs=tool_inputs(tool),
                tool_doc=tool_doc(tool), memory=self.memory_items(trial.api, in_flight, trial.kind),
                missing=(trial.missing or "").replace("_", " "))
            messages = [{"role": "system", "content": self.prompts.render("imagine_system")},
                        {"role": "user", "content": prompt}]
            # Nothing continues an imagination prompt (the next one lists other memory), so its
            # keys and values are not worth a place in a prefix cache.
            return GenerationRequest(messages=messages, constraint=query_constraint(config.max_query_chars),
                                     remember=False, **sampling)
        if trial.phase in ("reply", "follow_up"):
            # The simulated user: the writer's role again, shown the conversation so far as text.
            prompt = self.prompts.render("user_reply" if trial.phase == "reply" else "follow_up",
                                         query=trial.query, transcript=_transcript(self.trial_messages(trial)),
                                         missing=(trial.missing or "").replace("_", " "), tool_doc=tool_doc(self.tools[trial.api]))
            messages = [{"role": "system", "content": self.prompts.render("imagine_system")},
                        {"role": "user", "content": prompt}]
            return GenerationRequest(messages=messages, constraint=query_constraint(config.max_query_chars),
                                     remember=False, **sampling)
        if trial.phase == "distinct":
            # One more call of the parallel turn, its distinguishing value constrained to differ.
            assert trial.pending is not None
            found = self._distinguishing(trial.pending)
            assert found is not None, "a parallel turn enters `distinct` only when a parameter can differ"
            param, schema = found
            turn = {"thought": trial.pending_thought, "calls": trial.pending}
            messages = [*self.conversation(episode), {"role": "user", "content": trial.query or ""},
                        {"role": "assistant", "content": _step_text(turn)},
                        {"role": "user", "content": self.prompts.render("parallel_more", parameter=param.replace("_", " "))}]
            return GenerationRequest(messages=messages, constraint=Constraint.json(schema), remember=False, **sampling)
        if trial.phase == "rejected":
            # What a model that always calls would do with this query: the rejected side of a
            # when-not-to-call preference pair (the query alone, a call forced).
            messages = [*self.conversation(episode), {"role": "user", "content": trial.query or ""}]
            schema = self._act_schema(trial.api, True, False, kind=trial.kind)
            return GenerationRequest(messages=messages, constraint=Constraint.json(schema), remember=False, **sampling)
        messages = self.conversation(episode) + self.trial_messages(trial)
        if trial.phase == "act":
            allow_call = trial.calls_made < config.max_turns
            first = not any(step.action in ("call", "ask") for step in trial.steps)
            call_first = config.call_first and trial.kind != "irrelevant"
            allow_answer = not (call_first and allow_call and trial.calls_executed == 0)
            parallel = trial.kind == "parallel" and first and allow_call
            ask = self._required(trial.api) if trial.kind == "clarify" and first and allow_call else None
            if ask:  # the query was imagined without a value the tool needs: ask first (as call_first calls first)
                allow_answer = False
            schema = self._act_schema(trial.api, allow_call, allow_answer, kind=trial.kind, parallel=parallel,
                                      ask=tuple(ask) if ask else None, ask_only=bool(ask) and config.call_first)
            return GenerationRequest(messages=messages, constraint=Constraint.json(schema), **sampling)
        # reflect
        template = f"reflect_{trial.kind}" if trial.kind in REFLECT_KINDS else "reflect"
        return GenerationRequest(messages=[*messages, {"role": "user", "content": self.prompts.render(template)}],
                                 constraint=Constraint.choice(["yes", "no"]), **dict(sampling, max_tokens=4))

    def _required(self, api: str) -> list[str]:
        return required_parameters(self.tools[api])

    def _act_schema(self, api: str, allow_call: bool, allow_answer: bool, *, kind: str = "single",
                    parallel: bool = False, ask: tuple[str, ...] | None = None, ask_only: bool = False) -> dict[str, Any]:
        key = (api, allow_call, allow_answer, kind == "multiple", parallel, ask, ask_only)
        if key not in self._schemas:
            self._schemas[key] = act_schema(self.shown_tools(api, kind), self.config, allow_call=allow_call,
                                            allow_answer=allow_answer, parallel=parallel, ask=list(ask) if ask else None,
                                            ask_only=ask_only)
        return self._schemas[key]

    def _repeats_memory(self, trial: Trial, query: str, in_flight: Iterable[Trial]) -> bool:
        """Whether `query` repeats a query already explored, or being explored, for the trial's API."""
        if self.config.no_ltm:
            return False
        same = [t for t in in_flight if t.kind == trial.kind]
        earlier = [t.query for t in [*self.memory[(trial.api, trial.kind)], *same] if t is not trial and t.query]
        return self._repeats.repeats(query, earlier)

    def advance(self, trial: Trial, completion, in_flight: Iterable[Trial] = ()) -> list[dict[str, Any]]:
        """Apply one completion to a trial; return the calls to execute, if the step made any
        (several for a parallel step).

        `in_flight`: the API's other trials in progress (their queries count as explored).
        """
        if trial.phase == "imagine":
            if completion.ok:
                query = unframed_query(completion.value)
                if trial.reimagined < self.config.reimagine and self._repeats_memory(trial, query, in_flight):
                    trial.reimagined += 1  # imagined again next round, with another seed
                    self.reimagined += 1
                    return []
                trial.query = query
                trial.phase = "act"
            else:  # no usable query: the trial ends here, recorded with its error
                trial.steps.append(_invalid_step(completion))
                trial.phase = "done"
            return []
        if trial.phase in ("reply", "follow_up"):
            if not completion.ok:  # the simulated user said nothing usable: the trial ends
                trial.steps.append(_invalid_step(completion))
                trial.phase = "done"
                return []
            if trial.phase == "follow_up":  # the first answer stays in its step; the trial's answer is the last
                last = next(step for step in reversed(trial.steps) if step.action == "final_answer")
                last.text, trial.final_answer = trial.final_answer, None
            trial.steps.append(Step(thought=None, action="user", text=unframed_query(completion.value)))
            trial.phase = "act"
            return []
        if trial.phase == "rejected":
            if completion.ok and "call" in completion.value:
                trial.rejected_call = completion.value["call"]
            trial.phase = self._after_answer(trial)
            return []
        if trial.phase == "act":
            if not completion.ok:
                trial.steps.append(_invalid_step(completion))
                if trial.calls_made > self.config.max_turns:  # out of turns: give up without an answer
                    trial.phase = "done"
                return []
            value = completion.value
            if "final_answer" in value:
                trial.steps.append(Step(thought=value["thought"], action="final_answer"))
                trial.final_answer = value["final_answer"]
                if trial.kind == "multi_turn" and not any(step.action == "user" for step in trial.steps):
                    trial.phase = "follow_up"
                elif trial.kind in NO_CALL_KINDS and trial.rejected_call is None:
                    trial.phase = "rejected"
                else:
                    trial.phase = self._after_answer(trial)
                return []
            if "ask" in value:
                trial.steps.append(Step(thought=value["thought"], action="ask", text=value["ask"]))
                trial.phase = "reply"
                return []
            calls = value["calls"] if "calls" in value else [value["call"]]
            if len(calls) > 1:
                distinct = list({canonical_json(call): call for call in calls}.values())
                if len(distinct) < len(calls) and self._distinguishing(distinct) is not None:
                    # the same call twice is no parallel step: the repeats are asked for again, one
                    # at a time, constrained to other values (phase `distinct`)
                    trial.pending, trial.pending_thought, trial.pending_target = distinct, value["thought"], len(calls)
                    trial.phase = "distinct"
                    return []
                calls = distinct  # each call once (fewer than two fails the kind's rule)
            return self._commit_calls(trial, value["thought"], calls)
        if trial.phase == "distinct":
            assert trial.pending is not None
            if completion.ok and canonical_json(completion.value["call"]) not in {canonical_json(c) for c in trial.pending}:
                trial.pending.append(completion.value["call"])
            trial.resampled += 1
            if len(trial.pending) >= trial.pending_target or trial.resampled > self.config.reimagine:
                calls, thought = trial.pending, trial.pending_thought
                trial.pending, trial.pending_thought, trial.resampled, trial.phase = None, None, 0, "act"
                return self._commit_calls(trial, thought, calls)
            return []
        # reflect: the model's verdict, and for the kinds beyond STE also the kind's own rule
        trial.reflection = completion.value if completion.ok else None
        trial.succeeded = completion.value == "yes" if completion.ok else False
        if trial.succeeded and trial.kind != "single":
            trial.succeeded = kind_problem(TrialRecord.from_row(trial.record(self.backend, 0))) is None
        trial.phase = "done"
        return []

    def _commit_calls(self, trial: Trial, thought: str | None, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add the calls of one act turn as steps (those after the first flagged parallel)."""
        for index, call in enumerate(calls):
            trial.steps.append(Step(thought=thought if index == 0 else None, action="call",
                                    call=Call(call["name"], json.dumps(call["arguments"], ensure_ascii=False)),
                                    parallel=index > 0))
        return calls

    def _distinguishing(self, calls: list[dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
        """(the tool's parameter, the call schema with that parameter constrained to none of the
        values `calls` gave it): the first required parameter such a constraint can be written for."""
        tool = self.tools.get(calls[0]["name"])
        if tool is None:
            return None
        for param in tool.parameters.get("required", []):
            schema = call_schema(tool, max_string_length=self.config.max_argument_chars)
            properties = schema["properties"]["arguments"].get("properties", {})
            if param not in properties:
                continue
            narrowed = other_than(properties[param], [c["arguments"].get(param) for c in calls if c["name"] == tool.name])
            if narrowed is not None:
                properties[param] = narrowed
                return param, _object({"thought": {"type": "string", "maxLength": self.config.max_thought_chars},
                                       "call": schema})
        return None

    def _after_answer(self, trial: Trial) -> str:
        if self.config.no_reflection:
            trial.succeeded = True
            return "done"
        return "reflect"

    def run(self, writer: StageWriter) -> dict[str, Any]:
        """Explore until every API has its episodes, appending each round's finished trials to
        `writer`; returns the run's statistics."""
        for records in self.rounds(writer.progress_rows()):
            writer.append(records, units=[record["trial_id"] for record in records])
        return self.stats

    def rounds(self, written: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """Explore, yielding the records of the trials finished in each round (the caller writes
        them); `written` are the records already written (resume). The run's statistics are in
        `self.stats` when the iterator is exhausted."""
        config = self.config
        started = time.perf_counter()
        before = copy.deepcopy(self.backend.stats)  # this run's figures are the differences
        finished_ids = self._resume(written)
        queues = {api: self._episodes_to_run(api) for api in self.apis}
        active: dict[str, list[Episode]] = {api: [] for api in self.apis}
        total = len(self.apis) * config.episodes * config.slots
        done = len(finished_ids)
        with _Progress(self.progress, total, done, self.apis, config) as bar:
            while True:
                for api in self.apis:  # refill: keep parallel_episodes episodes per API in flight
                    while len(active[api]) < config.parallel_episodes and queues[api]:
                        active[api].append(queues[api].pop(0))
                    for episode in active[api]:
                        if episode.current is None:
                            episode.current = self._new_trial(episode)
                live = [e for api in self.apis for e in active[api]]
                if not live:
                    break
                requests = []
                for episode in live:
                    in_flight = [e.current for e in active[episode.api] if e is not episode and e.current]
                    requests.append(self.request_for(episode, in_flight))
                completions = self.backend.generate(requests)
                calls: list[tuple[Step, dict[str, Any]]] = []
                for episode, completion in zip(live, completions):
                    trial = episode.current
                    assert trial is not None
                    made = self.advance(trial, completion, [e.current for e in active[episode.api] if e.current])
                    steps = trial.steps[len(trial.steps) - len(made):]
                    calls.extend((step, call) for step, call in zip(steps, made))
                self._execute(calls)
                finished = self._collect_finished(active)
                if finished:
                    yield [t.record(self.backend, config.generation.seed) for t in finished]
                    done += len(finished)
                    bar.advance(finished)
        wall = time.perf_counter() - started
        stats = self.backend.stats
        backend_seconds = stats.seconds - before.seconds
        run = {
            "trials": done, "wall_seconds": round(wall, 3), "backend_seconds": round(backend_seconds, 3),
            "backend_share": round(backend_seconds / wall, 4) if wall else 0.0,
            "prompt_tokens": stats.prompt_tokens - before.prompt_tokens,
            "completion_tokens": stats.completion_tokens - before.completion_tokens,
            "queries_reimagined": self.reimagined,
        }
        for key in ("prefill_seconds", "decode_forward_seconds", "retries", "decode_steps"):
            if key in stats.extra:
                run[key] = round(stats.extra[key] - before.extra.get(key, 0), 3)
        if "prompt_tokens_computed" in stats.extra:  # backends that count it (transformers)
            # Prompt tokens served from the prefix/KV cache, out of all prompt tokens the backend
            # had to provide (each sample and retry counts: each needs its prompt's keys/values).
            reused = stats.extra["prefix_reused_tokens"] - before.extra["prefix_reused_tokens"]
            computed = stats.extra["prompt_tokens_computed"] - before.extra["prompt_tokens_computed"]
            run["prompt_tokens_computed"] = computed
            run["prefix_reused_tokens"] = reused
            run["prefix_hit_share"] = round(reused / (reused + computed), 4) if reused + computed else 0.0
        self.stats = run

    def _execute(self, calls: list[tuple[Step, dict[str, Any]]]) -> None:
        if not calls:
            return
        if self.config.no_exec:
            return  # observations withheld: the step keeps observation=None
        observations = self.executor.execute_many([call for _, call in calls])
        for (step, _), observation in zip(calls, observations):
            step.observation = observation

    def _new_trial(self, episode: Episode) -> Trial:
        trial = Trial(episode.api, episode.index, len(episode.done),
                      [t.name for t in self.shown_tools(episode.api, episode.kind)], kind=episode.kind)
        if episode.kind == "clarify":
            required = self._required(episode.api)
            if required:  # the parameter the query leaves out: a stable choice per trial
                digest = hashlib.sha256(f"{self.config.generation.seed}/missing/{trial.trial_id}".encode()).digest()
                trial.missing = required[digest[0] % len(required)]
        return trial

    def _collect_finished(self, active: dict[str, list[Episode]]) -> list[Trial]:
        finished = []
        for api in self.apis:
            for episode in list(active[api]):
                trial = episode.current
                if trial is None or trial.phase != "done":
                    continue
                finished.append(trial)
                self.memory[(api, trial.kind)].append(trial)
                episode.done.append(trial)
                episode.current = None
                if len(episode.done) >= self.config.slots:
                    active[api].remove(episode)
        return finished

    def _resume(self, written: list[dict[str, Any]]) -> set[str]:
        """Rebuild long-term memory and unfinished episodes from the trials already written."""
        self._written: dict[tuple[str, int], list[Trial]] = defaultdict(list)
        rows = sorted(written, key=lambda r: (r["episode"], r["slot"]))
        for row in rows:
            trial = Trial.from_record(row)
            self.memory[(trial.api, trial.kind)].append(trial)
            self._written[(trial.api, trial.episode)].append(trial)
        return {row["trial_id"] for row in rows}

    def _episodes_to_run(self, api: str) -> list[Episode]:
        episodes = []
        for index in range(self.config.episodes):
            done = self._written.get((api, index), [])
            if len(done) < self.config.slots:
                kind = self.episode_kinds.get(f"{api}/{index}", "single")
                episodes.append(Episode(api, index, done=list(done), kind=kind))
        return episodes


def required_parameters(tool: ToolSpec) -> list[str]:
    parameters = tool.parameters
    return [name for name in parameters.get("required", []) if name in parameters.get("properties", {})]


def plan_kinds(tools: dict[str, ToolSpec], apis: list[str], config: ExploreConfig) -> dict[str, str]:
    """Every episode's kind ("api/index" -> kind), decided for the whole run at once
    (schemas/kinds.assign_kinds), clarify moved to APIs that have a required parameter."""
    units = [f"{api}/{index}" for index in range(config.episodes) for api in apis]
    return _clarify_where_possible(assign_kinds(config.kinds, units, config.generation.seed),
                                   lambda api: required_parameters(tools[api]))


def _clarify_where_possible(kinds: dict[str, str], required) -> dict[str, str]:
    """A clarify episode needs an API with a required parameter to leave out: one assigned to
    an API without any trades kinds with the first episode (in unit order) of an API that has
    one and is not clarify itself; with no such episode it becomes single."""
    kinds = dict(kinds)
    for unit, kind in list(kinds.items()):
        if kind != "clarify" or required(unit.rsplit("/", 1)[0]):
            continue
        partner = next((other for other, k in kinds.items()
                        if k != "clarify" and required(other.rsplit("/", 1)[0])), None)
        if partner is None:
            kinds[unit] = "single"
        else:
            kinds[unit], kinds[partner] = kinds[partner], "clarify"
    return kinds


def tool_inputs(tool: ToolSpec) -> str:
    """What a tool takes, in words, for the imagination prompt (`the city; the number of days`)."""
    properties = tool.parameters.get("properties", {})
    return "; ".join((schema.get("description") or name).rstrip(". ") for name, schema in properties.items())


class RepeatGuard:
    """Whether a new query repeats earlier ones: the same words, or (with a threshold) nearly.

    Near repeats are found with the shared sentence embeddings (imaginarium.embeddings); each
    distinct text is embedded once, and the model is loaded only when a check needs it.
    """

    def __init__(self, threshold: float | None):
        self.threshold = threshold
        self._vectors: dict[str, Any] = {}

    def repeats(self, query: str, earlier: list[str]) -> bool:
        if not earlier:
            return False
        key = normalise_query(query)
        if any(normalise_query(text) == key for text in earlier):
            return True
        if self.threshold is None:
            return False
        vectors = self._embedded([query, *earlier])
        return bool(max(float(vectors[query] @ vectors[text]) for text in earlier) >= self.threshold)

    def _embedded(self, texts: list[str]) -> dict[str, Any]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            from imaginarium.embeddings import embed

            self._vectors.update(zip(missing, embed(missing)))
        return self._vectors


def _step_text(step: dict[str, Any]) -> str:
    """An earlier act step as the conversation shows it: compact JSON, keys in schema order.

    Constrained decoders write compact JSON, so the step reads back exactly as generated and
    the prefix cache can reuse the keys and values it computed while generating it.
    """
    return json.dumps(step, ensure_ascii=False, separators=(",", ":"))


def _transcript(messages: list[dict[str, Any]]) -> str:
    """A conversation as plain text for the simulated user (roles as words, JSON steps as is)."""
    names = {"user": "User", "assistant": "Assistant", "tool": "Tool result"}
    return "\n".join(f"{names.get(m['role'], m['role'])}: {m.get('content') or ''}" for m in messages)


def _label(trial: Trial) -> str:
    if trial.final_answer is None:
        return "no answer"
    return "yes" if trial.succeeded else "no"


def _invalid_step(completion) -> Step:
    reason = completion.error or f"generation ended with finish_reason={completion.finish_reason}"
    return Step(thought=completion.text[:500], action="invalid", parse_error=reason)


def _seed(base: int, trial_id: str, step: int, phase: str) -> int:
    """A per-request seed, the same in an interrupted and an uninterrupted run."""
    digest = hashlib.sha256(f"{base}/{trial_id}/{step}/{phase}".encode()).hexdigest()
    return int(digest[:8], 16)


class _Progress:
    """Rich progress bars: overall and per API (per-API bars only for a handful of APIs)."""

    PER_API_LIMIT = 12

    def __init__(self, enabled: bool, total: int, done: int, apis: list[str], config: ExploreConfig):
        self.enabled = enabled
        self.total, self.done, self.apis, self.config = total, done, apis, config

    def __enter__(self) -> _Progress:
        if not self.enabled:
            return self
        from rich.progress import Progress

        self.bar = Progress(transient=False)
        self.bar.__enter__()
        self.overall = self.bar.add_task("trials", total=self.total, completed=self.done)
        per_api = self.config.episodes * self.config.slots
        self.per_api = {}
        if len(self.apis) <= self.PER_API_LIMIT:
            self.per_api = {api: self.bar.add_task(f"  {api[:40]}", total=per_api) for api in self.apis}
        return self

    def advance(self, trials: list[Trial]) -> None:
        if not self.enabled:
            return
        self.bar.advance(self.overall, len(trials))
        for trial in trials:
            if trial.api in self.per_api:
                self.bar.advance(self.per_api[trial.api], 1)

    def __exit__(self, *exc_info) -> None:
        if self.enabled:
            self.bar.__exit__(*exc_info)


def explore_stage(out, tools_path, tools: list[ToolSpec], apis: list[str], backend: Backend, executor,
                  config: ExploreConfig, *, distractors: dict[str, list[str]] | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Run (or resume, or skip) an exploration of `apis` into the stage directory `out`.

    The lower-level entry (tests and benchmarks bring their own backend and executor); `explore`
    opens them from the config.
    """
    neighbours = kind_neighbours(tools, apis, config)
    writer = _writer(out, tools_path, apis, config, distractors, (backend.name, backend.model, backend.revision),
                     neighbours)
    if writer.done:
        log.info("%s: exploration already finished with these inputs and settings", out)
        return writer.manifest or {}
    with writer:
        explorer = Explorer(tools, apis, backend, executor, config, distractors=distractors, neighbours=neighbours,
                            progress=progress)
        return finish_exploration(writer, explorer.run(writer))


def finish_exploration(writer: StageWriter, stats: dict[str, Any]) -> dict[str, Any]:
    """Count, report on and finish an exploration whose trials are all written (local or Ray)."""
    rows = writer.progress_rows()
    per_api: dict[str, int] = defaultdict(int)
    per_kind: dict[str, int] = defaultdict(int)
    succeeded = 0
    for row in rows:
        per_api[row["api"]] += 1
        per_kind[row.get("kind") or "single"] += 1
        succeeded += bool(row["succeeded"])
    quality = exploration_quality(rows)
    counts = {"trials": len(rows), "succeeded": succeeded, "per_api": dict(sorted(per_api.items()))}
    if set(per_kind) != {"single"}:
        counts["per_kind"] = dict(sorted(per_kind.items()))
    return writer.finish(
        counts=counts,
        extra={"run": stats, "quality": quality},
        files=CardFacts(quality=quality).files(),
        sort_by=["api", "episode", "slot"],
    )


def kind_neighbours(tools: list[ToolSpec], apis: list[str], config: ExploreConfig) -> dict[str, list[str]] | None:
    """Each API's nearest tools, shown beside it in `multiple` trials (None without that kind)."""
    if "multiple" not in config.kinds or len(tools) < 2:
        return None
    return nearest_tools(tools, apis, config.kind_tools)


def _writer(out, tools_path, apis: list[str], config: ExploreConfig, distractors: dict[str, list[str]] | None,
            engine: tuple[str, str, str | None], neighbours: dict[str, list[str]] | None = None) -> StageWriter:
    """The stage writer of an exploration; its fingerprint covers the settings, the APIs and the
    engine that really generates (`engine`: backend name, model, revision). With `single` alone
    (STE) the kind settings are left out, so such a run keeps the fingerprint it always had."""
    settings = config.fingerprint()
    if config.kinds == DEFAULT_KINDS:
        settings.pop("kinds", None)
        settings.pop("kind_tools", None)
    settings["backend"], settings["model"], settings["revision"] = engine
    stage_config = {"explore": settings, "apis": apis, "distractors": distractors or {}}
    if neighbours:
        stage_config["kind_neighbours"] = neighbours
    inputs = {"tools": tools_path, **({"templates": config.templates} if config.templates else {})}
    return StageWriter(out, "explore", stage_config, inputs, schema=arrow_schema("episode_trial"))


def explore(tools: str | Path, out: str | Path, config: ExploreConfig | None = None, *,
            progress: bool = True, ray_engine: RayEngine | None = None) -> dict[str, Any]:
    """Explore the APIs of a tools file by simulated trial and error (STE) into a stage directory.

    Args:
        tools: a tools.jsonl file (`imaginarium tools import`).
        out: the stage directory to write; an identical finished run there makes this a no-op,
            an interrupted one is resumed.
        config: the settings (default: `ExploreConfig()`).
        progress: show progress bars.
        ray_engine: run on Ray with this engine (default: as `config.scale` says; docs/scale.md).

    Returns:
        The stage manifest: counts, `extra.run` (time, tokens, prefix-cache hits) and
        `extra.quality` (generators/quality.py).

    Raises:
        InputError: a missing or broken tools file, unknown API names, a corrupt cache, record
            mode for tools that nothing can run live.

    Example:
        >>> from imaginarium import explore, ExploreConfig
        >>> manifest = explore("tools.jsonl", "runs/explore", ExploreConfig(episodes=2, stm_slots=2))
    """
    from imaginarium.executor.options import open_executor, require_live
    from imaginarium.models.options import open_backend
    from imaginarium.schemas.toolspec import read_tools

    config = config or ExploreConfig()
    specs = read_tools(tools)
    chosen = select_apis(specs, config.apis, config.apis_file, tools)
    distractors = nearest_tools(specs, chosen, config.distractors) if config.distractors else None
    used = set(chosen) | {name for names in (distractors or {}).values() for name in names}
    if config.execution.cache_mode == "record":
        require_live(specs, used)  # before anything is written or loaded: record mode must record
    neighbours = kind_neighbours(specs, chosen, config)
    used |= {name for names in (neighbours or {}).values() for name in names}
    engine = (config.generation.backend, config.generation.model, config.generation.revision)
    writer = _writer(out, tools, chosen, config, distractors, engine, neighbours)
    if writer.done:  # a no-op: no model loaded
        return read_manifest(out) or {}
    if config.scale.on_ray or ray_engine is not None:
        from imaginarium.engine import open_engine
        from imaginarium.generators.explore_ray import explore_on_ray

        sharded = open_engine(config.scale, ray_engine)
        assert sharded is not None
        return explore_on_ray(writer, specs, chosen, config, sharded, distractors=distractors, neighbours=neighbours,
                              progress=progress)
    backend = open_backend(config.generation)
    with open_executor(specs, config.execution, simulator_backend=lambda: backend, used=used) as executor:
        return explore_stage(out, tools, specs, chosen, backend, executor, config, distractors=distractors,
                             progress=progress)


def select_apis(specs: list[ToolSpec], apis: list[str] | None, apis_file: str | Path | None,
                tools_path: str | Path) -> list[str]:
    """The APIs to explore: all tools, or those named (by name or source name).

    Raises:
        InputError: both lists given, a missing file, or a name that is no tool.
    """
    if apis and apis_file:
        raise InputError("give --apis or --apis-file, not both")
    if apis_file:
        path = Path(apis_file)
        if not path.is_file():
            raise InputError("no such file", where=str(path))
        wanted = _names_from_text(path.read_text(encoding="utf-8"), path)
    elif apis:
        wanted = list(apis)
    else:
        return [spec.name for spec in specs]
    by_any = {spec.name: spec.name for spec in specs} | {spec.source_name: spec.name for spec in specs}
    missing = [w for w in wanted if w not in by_any]
    if missing:
        raise InputError(f"unknown API(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
                         where=str(apis_file or tools_path))
    return list(dict.fromkeys(by_any[w] for w in wanted))


def _names_from_text(text: str, path: Path) -> list[str]:
    """An APIs file is a JSON list of names (like the STE API_list.json) or one name per line."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            names = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputError(f"not a JSON list ({exc.msg} at line {exc.lineno})", where=str(path)) from None
        if not isinstance(names, list):
            raise InputError("expected a JSON list of names", where=str(path))
        return [str(name) for name in names]
    return [line.strip() for line in stripped.splitlines() if line.strip() and not line.startswith("#")]


def nearest_tools(specs: list[ToolSpec], apis: list[str], k: int) -> dict[str, list[str]]:
    """For each API, the `k` other tools with the most similar descriptions (shown as distractors)."""
    from imaginarium.embeddings import embed, top_k

    texts = [f"{spec.name}: {spec.description}" for spec in specs]
    vectors = embed(texts)
    index = {spec.name: i for i, spec in enumerate(specs)}
    rows = [index[api] for api in apis]
    neighbours, _ = top_k(vectors[rows], vectors, k + 1)  # (indices, scores)
    result = {}
    for api, found in zip(apis, neighbours):
        result[api] = [specs[int(j)].name for j in found if specs[int(j)].name != api][:k]
    return result
