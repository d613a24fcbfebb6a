"""The questions TRICE ranks: a user's QA / math / call set, or the successful STE trials.

A question file is JSONL (or a stage directory with the same columns), one question per row:

    {"id": "q1", "question": "What is 17 * 23?", "answer": "391", "task": "math",
     "tools": ["calculator"], "call": {"name": "calculator", "arguments": {"expression": "17 * 23"}}}

`question` is required; `answer` too unless the task is `call`; `task` is qa | math | call
(default: call when only a gold call is given, else qa); `tools` the names allowed (default
every tool); `call` the gold call (required for `call`; when given, the pseudo-expert makes it).
`id` defaults to the row number.

A stage directory of episode trials (explore / filter / augment output) is converted: each
successful trial with a final answer whose last successful call got a real (or replayed real)
response becomes a question: the query, gold answer = the final answer, gold call = that call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError
from imaginarium.schemas.rows import TrialRecord
from imaginarium.schemas.toolspec import ToolSpec
from imaginarium.stage import read_rows
from imaginarium.trice.sampler import Question
from imaginarium.trice.scoring import TASKS, last_number


def read_questions(path: str | Path, tools: list[ToolSpec], *,
                   trials_task: str = "call") -> tuple[list[Question], dict[str, int]]:
    """(questions, counts) from a question file / stage directory or a stage directory of trials."""
    path = Path(path)
    if path.is_dir():
        rows = read_rows(path)
        if rows and "steps" in rows[0] and "trial_id" in rows[0]:
            return questions_from_trials(rows, tools, task=trials_task, where=str(path))
    elif path.is_file():
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"line {number}: not JSON ({exc.msg})", where=str(path)) from None
    else:
        raise InputError("no such file or directory", where=str(path))
    questions = [question_from_row(row, index, tools, str(path)) for index, row in enumerate(rows)]
    seen: set[str] = set()
    for index, question in enumerate(questions):
        if question.id in seen:
            raise InputError(f"row {index}, field id: duplicate id {question.id!r}", where=str(path))
        seen.add(question.id)
    if not questions:
        raise InputError("no questions", where=str(path))
    return questions, {"questions": len(questions)}


def question_from_row(row: Any, index: int, tools: list[ToolSpec], where: str) -> Question:
    """One validated question; InputError names the row and field at fault."""
    def bad(field: str, message: str) -> InputError:
        return InputError(f"row {index}, field {field}: {message}", where=where)

    if not isinstance(row, dict):
        raise bad("(row)", "not a JSON object")
    known = {tool.name for tool in tools}
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise bad("question", "missing or empty")
    call = _gold_call(row.get("call"), known, bad)
    answer = row.get("answer")
    if (answer is not None and not isinstance(answer, (str, int, float))) or isinstance(answer, bool):
        raise bad("answer", "must be a string or a number")
    answer = None if answer is None else str(answer)
    task = row.get("task") or ("call" if call is not None and answer is None else "qa")
    if task not in TASKS:
        raise bad("task", f"{task!r} is not one of {', '.join(TASKS)}")
    if task == "call" and call is None:
        raise bad("call", "a call task needs the gold call")
    if task != "call" and answer is None:
        raise bad("answer", f"a {task} task needs the gold answer")
    if task == "math" and last_number(answer or "") is None:
        raise bad("answer", f"a math answer needs a number, got {answer!r}")
    names = row.get("tools")
    if names is None:
        names = [tool.name for tool in tools]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise bad("tools", "must be a non-empty list of tool names")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise bad("tools", f"unknown tool(s) {', '.join(unknown)}")
    if call is not None and call["name"] not in names:
        raise bad("call", f"the gold call's tool {call['name']} is not among the question's tools")
    identifier = row.get("id", index)
    return Question(id=str(identifier), question=text.strip(), task=task, answer=answer,
                    tools=list(dict.fromkeys(names)), call=call)


def _gold_call(value: Any, known: set[str], bad) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise bad("call", "must be an object {name, arguments}")
    if value["name"] not in known:
        raise bad("call/name", f"unknown tool {value['name']!r}")
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise bad("call/arguments", f"not JSON ({exc.msg})") from None
    if not isinstance(arguments, dict):
        raise bad("call/arguments", "must be a JSON object")
    return {"name": value["name"], "arguments": arguments}


def questions_from_trials(rows: list[dict[str, Any]], tools: list[ToolSpec], *, task: str = "call",
                          where: str = "trials") -> tuple[list[Question], dict[str, int]]:
    """Successful STE trials -> questions (see the module docstring); counts kept and skipped."""
    if task not in ("call", "qa"):
        raise InputError(f"trials make call or qa questions, not {task!r}", where="--trials-task")
    known = {tool.name for tool in tools}
    questions, skipped = [], 0
    for trial in (TrialRecord.from_row(row) for row in rows):
        call = _grounded_call(trial) if trial.succeeded and trial.final_answer else None
        if call is None or call["name"] not in known:
            skipped += 1
            continue
        shown = [name for name in trial.tools_shown if name in known] or [call["name"]]
        questions.append(Question(id=trial.trial_id, question=trial.query, task=task, answer=trial.final_answer,
                                  tools=shown, call=call))
    if not questions:
        raise InputError("no successful trial with a final answer grounded in a real response", where=where)
    return questions, {"questions": len(questions), "trials_skipped": skipped}


def _grounded_call(trial: TrialRecord) -> dict[str, Any] | None:
    """The trial's last call that executed OK with a real or replayed real response."""
    for step in reversed(trial.calls):
        observation = step.observation
        if step.call is not None and observation is not None and observation.ok and observation.source in ("real", "cached"):
            return {"name": step.call.name, "arguments": step.call.args}
    return None
