"""TRICE candidates: K executed tool-use episodes per question, scored against the gold.

For each question, K candidates are sampled (several seeds and temperatures and/or several
models, taken in turn), plus the gold behaviour-cloning response as the pseudo-expert. A
candidate is a short episode of the explorer's act step (generators/explore.py `act_schema`):
a JSON object with a thought and either a call of one of the allowed tools (valid by
construction under the tool's schema) or the final answer. Calls run through the executor and
the model sees what came back, up to `max_turns` calls, after which only an answer is allowed.

Throughput: all candidates of a batch of questions advance together; each round sends every
active episode's next step to its model's backend in one call and executes all the round's
calls at once. A finished batch is scored (trice/scoring.py) and appended as one durable
chunk, so an interrupted run resumes at the next batch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaginarium.builders.chat import call_id, message
from imaginarium.builders.neighbours import tool_entry
from imaginarium.generators.explore import ExploreConfig, act_schema
from imaginarium.models.backend import Backend, Constraint, GenerationRequest
from imaginarium.prompts import Prompts
from imaginarium.schemas.toolspec import ToolSpec, tool_doc
from imaginarium.trice.ranking import rank
from imaginarium.trice.scoring import Executed, Gold, canonical_call, score


@dataclass
class Question:
    """One question with its gold: `answer` text and/or a gold `call` {name, arguments (object)}."""

    id: str
    question: str
    task: str
    answer: str | None
    tools: list[str]
    call: dict[str, Any] | None = None

    @property
    def gold(self) -> Gold:
        return Gold(self.task, self.answer, self.call)

    @property
    def gold_text(self) -> str:
        return canonical_call(self.call) if self.task == "call" and self.call else self.answer or ""


@dataclass
class SamplerConfig:
    """Everything that shapes the candidates (part of the stage fingerprint)."""

    candidates: int = 5
    temperatures: list[float] = field(default_factory=lambda: [0.7, 1.0])
    seed: int = 0
    max_turns: int = 2
    min_calls: int = 0
    max_tokens: int = 256
    max_thought_chars: int = 120
    max_answer_chars: int = 120
    max_argument_chars: int = 64
    include_gold: bool = True
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.candidates < 0:
            raise ValueError("candidates must be at least 0")
        if not 0 <= self.min_calls <= self.max_turns:
            raise ValueError("min_calls must be between 0 and max_turns")
        if not self.temperatures:
            raise ValueError("give at least one temperature")

    def act_limits(self) -> ExploreConfig:
        """The explorer's config carrying the act step's length bounds."""
        return ExploreConfig(max_thought_chars=self.max_thought_chars, max_answer_chars=self.max_answer_chars,
                             max_argument_chars=self.max_argument_chars)


@dataclass
class Episode:
    """One sampled candidate in progress: the model's conversation and the record's messages."""

    question: Question
    index: int
    backend: Backend
    temperature: float
    seed: int
    conversation: list[dict[str, Any]]
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    invalid: int = 0
    final_answer: str | None = None
    done: bool = False


class Sampler:
    """Samples, executes and scores the candidates of batches of questions."""

    def __init__(self, tools: list[ToolSpec], backends: list[Backend], executor, config: SamplerConfig,
                 *, system: str | None, templates: str | None = None):
        self.tools = {tool.name: tool for tool in tools}
        self.backends = backends
        self.executor = executor
        self.config = config
        self.system = system
        self.prompts = Prompts(Path(__file__).parent / "templates", "trice", templates)
        self._schemas: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}

    # -- records -----------------------------------------------------------------------------
    def prompt(self, question: Question) -> list[dict[str, Any]]:
        """The training prompt: system (if any) and the user's question."""
        return ([message("system", self.system)] if self.system else []) + [message("user", question.question)]

    def shown(self, question: Question) -> list[ToolSpec]:
        return [self.tools[name] for name in question.tools]

    def ranking_row(self, question: Question, candidates: list[dict[str, Any]]) -> dict[str, Any]:
        return {"question_id": question.id, "task": question.task, "prompt": self.prompt(question),
                "tools": [tool_entry(tool) for tool in self.shown(question)], "gold": question.gold_text,
                "candidates": rank(candidates)}

    # -- one batch ----------------------------------------------------------------------------
    def run_batch(self, questions: list[Question]) -> list[dict[str, Any]]:
        """Ranking rows (schemas/records/ranking_row.json) of a batch of questions."""
        golds = self._gold_candidates(questions) if self.config.include_gold else [[] for _ in questions]
        episodes = [self._start(q, k) for q in questions for k in range(self.config.candidates)]
        while True:
            active = [e for e in episodes if not e.done]
            if not active:
                break
            calls = []
            for backend in self.backends:
                mine = [e for e in active if e.backend is backend]
                completions = backend.generate([self._request(e) for e in mine])
                for episode, completion in zip(mine, completions):
                    call = self._advance(episode, completion)
                    if call is not None:
                        calls.append((episode, call))
            self._execute(calls)
        rows = []
        for question, gold in zip(questions, golds):
            sampled = [self._candidate(e) for e in episodes if e.question is question]
            rows.append(self.ranking_row(question, gold + sampled))
        return rows

    def _start(self, question: Question, index: int) -> Episode:
        config = self.config
        system = self.prompts.render("system", tool_docs=[tool_doc(t) for t in self.shown(question)])
        return Episode(
            question=question, index=index, backend=self.backends[index % len(self.backends)],
            temperature=config.temperatures[index % len(config.temperatures)],
            seed=candidate_seed(config.seed, question.id, index),
            conversation=[{"role": "system", "content": system}, {"role": "user", "content": question.question}],
        )

    def _schema(self, question: Question, made: int) -> dict[str, Any]:
        """The act step's schema: a call or an answer; only a call before `min_calls`, only an
        answer from `max_turns` on."""
        mode = "answer" if made >= self.config.max_turns else "call" if made < self.config.min_calls else "either"
        key = (tuple(question.tools), mode)
        if key not in self._schemas:
            self._schemas[key] = act_schema(self.shown(question), self.config.act_limits(), allow_call=mode != "answer",
                                            allow_answer=mode != "call")
        return self._schemas[key]

    def _request(self, episode: Episode) -> GenerationRequest:
        step = len(episode.calls) + episode.invalid
        return GenerationRequest(
            messages=episode.conversation,
            constraint=Constraint.json(self._schema(episode.question, len(episode.calls))),
            tools=[t.openai_tool() for t in self.shown(episode.question)], max_tokens=self.config.max_tokens,
            temperature=episode.temperature, seed=episode.seed + step)

    def _advance(self, episode: Episode, completion) -> dict[str, Any] | None:
        """Apply one step; return the call to execute, if the step made one."""
        if not completion.ok:
            episode.invalid += 1
            episode.messages.append(message("assistant", completion.text[:500]))
            reason = completion.error or f"generation ended with finish_reason={completion.finish_reason}"
            episode.conversation += [{"role": "assistant", "content": completion.text[:500]},
                                     {"role": "user", "content": f"That was not a valid step: {reason}"}]
            episode.done = len(episode.calls) + episode.invalid > self.config.max_turns
            return None
        value = completion.value
        episode.conversation.append({"role": "assistant", "content": json.dumps(value, ensure_ascii=False)})
        if "final_answer" in value:
            episode.final_answer = value["final_answer"]
            episode.messages.append(message("assistant", value["final_answer"]))
            episode.done = True
            return None
        call = value["call"]
        identifier = call_id(f"{episode.question.id}/{episode.index}", len(episode.calls))
        arguments = json.dumps(call["arguments"], ensure_ascii=False)
        episode.messages.append(message("assistant", None, tool_calls=[
            {"id": identifier, "type": "function", "function": {"name": call["name"], "arguments": arguments}}]))
        episode.calls.append({"name": call["name"], "arguments": call["arguments"], "ok": False, "id": identifier})
        return call

    def _execute(self, calls: list[tuple[Episode, dict[str, Any]]]) -> None:
        observations = self.executor.execute_many([call for _, call in calls]) if calls else []
        for (episode, call), observation in zip(calls, observations):
            record = episode.calls[-1]
            record["ok"] = observation.ok
            episode.messages.append(message("tool", observation.content, tool_call_id=record["id"], name=call["name"]))
            episode.conversation.append({"role": "tool", "name": call["name"], "content": observation.content})

    def _candidate(self, episode: Episode) -> dict[str, Any]:
        executed = Executed(episode.calls, episode.final_answer,
                            wellformed=episode.invalid == 0 and episode.final_answer is not None)
        return self._scored(episode.question, episode.messages, executed, episode.backend.model, episode.seed)

    def _scored(self, question: Question, messages, executed: Executed, model: str, seed: int | None) -> dict[str, Any]:
        schema = self.tools[question.call["name"]].parameters if question.call else None
        value, reason = score(executed, question.gold, schema=schema, tolerance=self.config.tolerance)
        return {"messages": messages, "score": value, "reason": reason, "final_answer": executed.final_answer,
                "model": model, "seed": seed}

    def _gold_candidates(self, questions: list[Question]) -> list[list[dict[str, Any]]]:
        """The pseudo-expert: the gold call (really executed) and the gold answer."""
        with_call = [q for q in questions if q.call is not None]
        observations = dict(zip((q.id for q in with_call), self.executor.execute_many([q.call for q in with_call])))
        out = []
        for question in questions:
            messages, calls = [], []
            if question.call is not None:
                observation = observations[question.id]
                identifier = call_id(f"{question.id}/gold", 0)
                arguments = json.dumps(question.call["arguments"], ensure_ascii=False)
                messages += [
                    message("assistant", None, tool_calls=[{"id": identifier, "type": "function", "function": {
                        "name": question.call["name"], "arguments": arguments}}]),
                    message("tool", observation.content, tool_call_id=identifier, name=question.call["name"])]
                calls.append({**question.call, "ok": observation.ok})
            if question.answer is not None:
                messages.append(message("assistant", question.answer))
            executed = Executed(calls, question.answer, wellformed=question.answer is not None)
            out.append([self._scored(question, messages, executed, "gold", None)])
        return out


def candidate_seed(base: int, question_id: str, index: int) -> int:
    """A per-candidate seed, the same in an interrupted and an uninterrupted run."""
    return int(hashlib.sha256(f"{base}/{question_id}/{index}".encode()).hexdigest()[:7], 16)
