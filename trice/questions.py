"""The questions TRICE ranks: a user's QA / math / call set, or the successful STE trials.

A question file is JSONL (or a stage directory with the same columns), one question per row:

    {"id": "q1", "question": "What is 17 * 23?", "answer": "391", "task": "math",
     "tools": ["calculator"], "call": {"name": "calculator", "arguments": {"expression": "17 * 23"}}}

`question` is required; `answer` too unless the task is `call`; `task` is qa | math | call
(default: call when only a gold call is given, else qa); `tools` the names allowed (default
every tool); `call` the gold call (required for `call`; when given, the pseudo-expert makes it).
`id` defaults to the row number. Every row is checked before anything is sampled: a gold call
must name a known tool and validate against its parameters schema (jsonschema, as the executor
checks calls); `--skip-invalid` leaves bad rows out (counted and reported on stderr).

A stage directory of episode trials (explore / filter / augment output) is converted: each
successful trial with a final answer whose last successful call got a real (or replayed real)
response becomes a question: the query, gold answer = the final answer, gold call = that call.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from imaginarium.errors import InputError
from imaginarium.schemas.rows import TrialRecord
from imaginarium.schemas.toolspec import ToolSpec
from imaginarium.trice.scoring import TASKS, last_number

if TYPE_CHECKING:  # the sampler and stage directories load lazily: eval and predict import this module
    from imaginarium.trice.sampler import Question


# -- input rows, checked before any model loads --------------------------------------------------
# (evaluation's eval and predict read their files with these too: trice is the lower layer)
MAX_DEPTH = 100      # nesting levels of one JSON value (a row, a document); real rows stay far below
SHOWN_REASONS = 5    # bad rows named on stderr with --skip-invalid


def bare_message(exc: InputError) -> str:
    """The message of an InputError without its `where: ` prefix."""
    text, prefix = str(exc), f"{exc.where}: "
    return text[len(prefix):] if exc.where and text.startswith(prefix) else text


class BadRows:
    """The bad rows of a run's input files, collected while reading, reported once by `check`.

    Call `check()` after every input file is read and before any model loads: without `skip`
    it raises the first bad row as one InputError line (naming how many more there are); with
    `skip` it writes the count and the first SHOWN_REASONS reasons to stderr and the run goes
    on without those rows.
    """

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.errors: list[InputError] = []

    def add(self, error: InputError) -> None:
        self.errors.append(error)

    def __len__(self) -> int:
        return len(self.errors)

    def check(self) -> None:
        if not self.errors:
            return
        first, more = self.errors[0], len(self.errors) - 1
        if not self.skip:
            if not more:
                raise first
            rows = "row" if more == 1 else "rows"
            raise InputError(f"{bare_message(first)} (and {more} more bad {rows}; --skip-invalid skips them)",
                             where=first.where)
        shown = self.errors[:SHOWN_REASONS]
        rows = "row" if len(self.errors) == 1 else "rows"
        lines = [f"warning: skipped {len(self.errors)} invalid {rows} (--skip-invalid); "
                 f"{'the reason' if len(shown) == 1 else f'the first {len(shown)} reasons'}:"]
        lines += [f"  {error}" for error in shown]
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()

    def nothing_left(self, what: str, where: str) -> InputError:
        """The error for a run whose every row was bad (and skipped)."""
        first = f"; the first: {self.errors[0]}" if self.errors else ""
        return InputError(f"no valid {what} left ({len(self.errors)} invalid skipped{first})", where=where)


# -- reading JSON -----------------------------------------------------------------------------------
class JsonProblem(ValueError):
    """A JSON text that cannot be used, with the line (1-based, within the text) at fault."""

    def __init__(self, message: str, line: int = 1, kind: str = "syntax", detail: str = ""):
        super().__init__(message)
        self.message, self.line = message, line
        # syntax (`detail`: json's own message), constant (NaN, Infinity), number (too many
        # digits), deep, or deep-unparsed (too deep for the parser: the text may be more than one value)
        self.kind, self.detail = kind, detail


class _Constant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Constant(name)


_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_BRACKETS = re.compile(_STRING + r"|[\[{\]}]")
_CONSTANTS = re.compile(_STRING + r"|(-?Infinity|NaN)")
_LONG_NUMBER = re.compile(r"[0-9]{4000,}")


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _too_deep(text: str) -> int | None:
    """Offset of the first bracket nested deeper than MAX_DEPTH (outside strings), if any."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif token in ("]", "}"):
            depth -= 1
    return None


def loads(text: str) -> Any:
    """`json.loads` that raises JsonProblem (one message, the line) for what is not JSON and for
    what the pipeline cannot carry: nesting deeper than MAX_DEPTH, NaN / Infinity, integers of
    thousands of digits. (Non-finite numbers written as 1e999 and lone surrogates are found by
    `value_problem`, which names the field.)"""
    deep = False
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"not JSON ({exc.msg}, column {exc.colno})", exc.lineno, detail=exc.msg) from None
    except _Constant as exc:
        found = next((m for m in _CONSTANTS.finditer(text) if m.group(1)), None)
        raise JsonProblem(f"{exc} is not a JSON number", _line(text, found.start()) if found else 1,
                          "constant") from None
    except RecursionError:
        deep, value = True, None
    except ValueError as exc:  # an integer past Python's digit limit
        found = _LONG_NUMBER.search(text)
        raise JsonProblem(f"not JSON ({str(exc).split(':')[0]})", _line(text, found.start()) if found else 1,
                          "number") from None
    offset = _too_deep(text)
    kind = "deep-unparsed" if deep else "deep"
    if offset is not None:
        raise JsonProblem(f"JSON nested deeper than {MAX_DEPTH} levels", _line(text, offset), kind)
    if deep:
        raise JsonProblem(f"JSON nested deeper than {MAX_DEPTH} levels", 1, kind)
    return value


def value_problem(value: Any) -> tuple[list[str | int], str] | None:
    """(path, message) of the first value no output can carry: a number that is not finite, a
    string or key with a lone surrogate (not UTF-8), nesting deeper than MAX_DEPTH."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return path[:3], f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(node, float) and not math.isfinite(node):
            return path, f"{node} is not a JSON number"
        if isinstance(node, str):
            problem = _surrogate(node)
            if problem:
                return path, problem
        elif isinstance(node, dict):
            for key, item in node.items():
                problem = _surrogate(key) if isinstance(key, str) else None
                if problem:
                    return path, f"a key: {problem}"
                stack.append((item, [*path, key]))
        elif isinstance(node, list):
            stack.extend((item, [*path, index]) for index, item in enumerate(node))
    return None


def _surrogate(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text with a lone surrogate (\\u{ord(text[exc.start]):04x}) is not UTF-8"
    return None

def read_text(path: Path) -> str:
    """The file as text; not UTF-8 raises InputError naming the file and line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror or exc})", where=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=f"{path}:{line}") from None


def read_document(path: Path, text: str | None = None) -> Any:
    """A whole-file JSON document; any problem raises InputError naming the file and line."""
    text = read_text(path) if text is None else text
    try:
        return loads(text)
    except JsonProblem as exc:
        raise InputError(exc.message, where=f"{path}:{exc.line}") from None


class Row(NamedTuple):
    """One row of an input file: where it is (`FILE:LINE` or `FILE#/pointer`), its index among
    the file's rows (non-blank lines), and its value."""

    where: str
    index: int  # type: ignore[assignment]  # a field, shadowing tuple.index on purpose
    value: Any


def read_jsonl(path: Path, bad: BadRows, text: str | None = None) -> Iterator[Row]:
    """The rows of a JSONL file, in order; a line that is not UTF-8 or not usable JSON goes to
    `bad` when it is reached (its index is still counted, so later rows keep their numbers)."""
    if text is None:
        try:
            lines: list[Any] = path.read_bytes().split(b"\n")
        except OSError as exc:
            raise InputError(f"cannot read it ({exc.strerror or exc})", where=str(path)) from None
    else:
        lines = text.split("\n")
    index = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            value = loads(line)
        except UnicodeDecodeError as exc:
            bad.add(InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=where))
        except JsonProblem as exc:
            bad.add(InputError(exc.message, where=where))
        else:
            yield Row(where, index, value)
        index += 1


# -- questions ---------------------------------------------------------------------------------------
def read_questions(path: str | Path, tools: list[ToolSpec], *, trials_task: str = "call",
                   skip_invalid: bool = False) -> tuple[list[Question], dict[str, int]]:
    """(questions, counts) from a question file / stage directory or a stage directory of trials.

    Every row is checked first (`question_from_row`, each gold call against its tool's
    parameters schema). A bad row raises InputError naming the file and the row (or line) and
    field; with `skip_invalid` bad rows are left out, counted (`invalid_skipped`) and the count
    and first reasons written to stderr.
    """
    from imaginarium.stage import read_rows

    path = Path(path)
    bad = BadRows(skip_invalid)
    if path.is_dir():
        table = read_rows(path)
        if table and "steps" in table[0] and "trial_id" in table[0]:
            return questions_from_trials(table, tools, task=trials_task, where=str(path))
        rows: Iterable[Row] = [Row(str(path), index, row) for index, row in enumerate(table)]
    elif path.is_file():
        rows = read_jsonl(path, bad)
    else:
        raise InputError("no such file or directory", where=str(path))
    questions: list[Question] = []
    seen: set[str] = set()
    for row in rows:
        try:
            question = question_from_row(row.value, row.index, tools, str(path))
            if question.id in seen:
                raise InputError(f"row {row.index}, field id: duplicate id {question.id!r}", where=str(path))
        except InputError as exc:
            bad.add(exc)
            continue
        seen.add(question.id)
        questions.append(question)
    bad.check()
    if not questions:
        raise bad.nothing_left("questions", str(path)) if bad else InputError("no questions", where=str(path))
    counts = {"questions": len(questions)}
    return questions, ({**counts, "invalid_skipped": len(bad)} if bad else counts)


def question_from_row(row: Any, index: int, tools: list[ToolSpec], where: str) -> Question:
    """One validated question; InputError names the row and field at fault."""
    from imaginarium.trice.sampler import Question

    def bad(field: str, message: str) -> InputError:
        return InputError(f"row {index}, field {field}: {message}", where=where)

    if not isinstance(row, dict):
        raise bad("(row)", "not a JSON object")
    problem = value_problem(row)
    if problem:
        raise bad("/".join(map(str, problem[0])) or "(row)", problem[1])
    specs = {tool.name: tool for tool in tools}
    known = set(specs)
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise bad("question", "missing or empty")
    call = _gold_call(row.get("call"), specs, bad)
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
    if call is not None:
        call_error = call_problem(specs[call["name"]], call["arguments"])
        if call_error:
            raise bad("call/arguments", f"not valid for {call['name']}: {call_error}")
    identifier = row.get("id", index)
    if isinstance(identifier, bool) or not isinstance(identifier, (str, int)) or not str(identifier).strip():
        raise bad("id", "must be a non-empty string or an integer")
    return Question(id=str(identifier), question=text.strip(), task=task, answer=answer,
                    tools=list(dict.fromkeys(names)), call=call)


def _gold_call(value: Any, specs: dict[str, ToolSpec], bad) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise bad("call", "must be an object {name, arguments}")
    if value["name"] not in specs:
        raise bad("call/name", f"unknown tool {value['name']!r}")
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = loads(arguments)
        except JsonProblem as exc:
            raise bad("call/arguments", exc.message) from None
        problem = value_problem(arguments)
        if problem:
            raise bad("/".join(["call/arguments", *map(str, problem[0])]), problem[1])
    if not isinstance(arguments, dict):
        raise bad("call/arguments", "must be a JSON object")
    return {"name": value["name"], "arguments": arguments}


def call_problem(spec: ToolSpec, arguments: dict[str, Any]) -> str | None:
    """Why `arguments` do not validate against the tool's parameters schema (as the executor
    checks them, formats included), or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(json.dumps(spec.parameters, sort_keys=True)).iter_errors(arguments))
    if error is None:
        return None
    field = "/".join(str(part) for part in error.absolute_path)
    return f"{field}: {error.message}" if field else error.message


@functools.lru_cache(maxsize=256)
def _validator(schema: str):
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(schema), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def questions_from_trials(rows: list[dict[str, Any]], tools: list[ToolSpec], *, task: str = "call",
                          where: str = "trials") -> tuple[list[Question], dict[str, int]]:
    """Successful STE trials -> questions (see the module docstring); counts kept and skipped."""
    from imaginarium.trice.sampler import Question

    if task not in ("call", "qa"):
        raise InputError(f"trials make call or qa questions, not {task!r}", where="--trials-task")
    specs = {tool.name: tool for tool in tools}
    known = set(specs)
    questions, skipped = [], 0
    for trial in (TrialRecord.from_row(row) for row in rows):
        call = _grounded_call(trial) if trial.succeeded and trial.final_answer else None
        if call is None or call["name"] not in known or not isinstance(call["arguments"], dict) \
                or call_problem(specs[call["name"]], call["arguments"]):
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
