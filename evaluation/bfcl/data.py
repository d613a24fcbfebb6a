"""BFCL's files: where they are, which categories there are, and reading them with every row checked.

Layout (bfcl-eval's `data/` directory, or an export of imaginarium's own data, export.py):
`BFCL_v4_<category>.json` (questions: JSON lines `{"id", "question": [[messages]], "function":
[docs]}`) and `possible_answer/BFCL_v4_<category>.json` (`{"id", "ground_truth": [{name:
{param: [values]}}]}`). Other versions (`BFCL_v3_...`) are read the same way. Irrelevance and
relevance categories have no possible answers. Multi-turn, memory, web-search and format
sensitivity are scored by executing state machines, not by AST matching: they are refused.

Result files are JSON lines with `id` and `result` (bfcl-eval's `*_result.json`); a directory of
them is read whole. The category of a result comes from `--category` or from its id (the id
without its trailing `_N` / `_N-N-N`).

Every bad line is one InputError naming `FILE:LINE` and the field; nothing is scored before all
inputs have been read.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaginarium.errors import InputError
from imaginarium.trice.questions import BadRows, read_jsonl

CATEGORIES = (
    "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
    "irrelevance", "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
    "live_irrelevance", "live_relevance",
)
NON_LIVE = CATEGORIES[:7]
LIVE = CATEGORIES[7:]
# Categories of imaginarium's own exports (`build bfcl`) that BFCL does not have: `clarify` items
# (a value the call needs is missing) are scored like irrelevance: the right first reply is no call.
OWN_CATEGORIES = ("clarify",)
SCORED = (*CATEGORIES, *OWN_CATEGORIES)
ALIASES = {"simple": "simple_python", "java": "simple_java", "javascript": "simple_javascript"}  # BFCL v1-v3 ids
UNSUPPORTED = ("multi_turn", "memory", "web_search", "format_sensitivity")
_ID_TAIL = re.compile(r"_\d+(?:-\d+)*$")


@dataclass
class BfclItem:
    """One test question: its id and category, the conversation, the function docs, the golds."""

    id: str
    category: str
    question: list[Any]
    functions: list[dict[str, Any]]
    golds: list[dict[str, dict[str, list]]] | None = None  # None: irrelevance / relevance
    where: str = ""


@dataclass
class BfclData:
    root: Path
    items: dict[str, BfclItem] = field(default_factory=dict)  # id -> item, over the categories read


def default_data_dir() -> Path | None:
    """The installed bfcl-eval package's `data` directory, if bfcl-eval is installed (found
    without importing it: its top-level import pulls the whole leaderboard's dependencies)."""
    spec = importlib.util.find_spec("bfcl_eval")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        data = Path(location) / "data"
        if data.is_dir():
            return data
    return None


def category_of(item_id: str) -> str:
    """The category an id belongs to: `simple_python_12` -> simple_python,
    `live_parallel_multiple_3-1-0` -> live_parallel_multiple."""
    base = _ID_TAIL.sub("", item_id)
    return ALIASES.get(base, base)


def check_category(category: str, where: str | None = None) -> str:
    category = ALIASES.get(category, category)
    if category in CATEGORIES or category in OWN_CATEGORIES:
        return category
    if any(category.startswith(name) for name in UNSUPPORTED):
        raise InputError(f"category {category!r} is scored by executing calls (multi-turn, memory, web search, "
                         f"format sensitivity), not by AST matching; eval scores {', '.join(CATEGORIES)}", where=where)
    raise InputError(f"unknown BFCL category {category!r} (one of {', '.join(CATEGORIES)})", where=where)


def present_categories(root: Path) -> list[str]:
    """The categories eval scores that have a questions file under `root`."""
    return [c for c in SCORED if category_file(root, c) is not None]


def category_file(root: Path, category: str, answers: bool = False) -> Path | None:
    """The questions (or possible answers) file of a category under `root`, newest version first."""
    folder = root / "possible_answer" if answers else root
    pattern = re.compile(rf"BFCL_v(\d+)_{re.escape(category)}\.json")
    found = [(int(m.group(1)), path) for path in folder.glob("BFCL_v*.json") if (m := pattern.fullmatch(path.name))]
    return max(found)[1] if found else None


def load_categories(root: str | Path, categories: list[str]) -> BfclData:
    """Questions and possible answers of `categories` under `root`, every line checked.

    Raises:
        InputError: a missing directory or file, a malformed line (naming FILE:LINE and field).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("no such BFCL data directory", where=str(root))
    data = BfclData(root)
    for category in categories:
        questions = category_file(root, category)
        if questions is None:
            raise InputError(f"no questions file for category {category!r} (BFCL_v*_{category}.json)", where=str(root))
        golds = _golds(root, category)
        bad = BadRows()
        for row in read_jsonl(questions, bad):
            try:
                item = _question(row.value, row.where, category)
            except InputError as exc:
                bad.add(exc)
                continue
            if item.id in data.items:
                bad.add(InputError(f"field id: {item.id!r} appears twice", where=row.where))
                continue
            if golds is not None:
                if item.id not in golds:
                    bad.add(InputError(f"no possible answer for {item.id!r}", where=row.where))
                    continue
                item.golds = golds[item.id]
            data.items[item.id] = item
        bad.check()
    return data


def _golds(root: Path, category: str) -> dict[str, list[dict[str, dict[str, list]]]] | None:
    if "relevance" in category or category in OWN_CATEGORIES:  # scored by whether a call is made
        return None
    path = category_file(root, category, answers=True)
    if path is None:
        raise InputError(f"no possible-answer file for category {category!r} "
                         f"(possible_answer/BFCL_v*_{category}.json)", where=str(root))
    golds: dict[str, list[dict[str, dict[str, list]]]] = {}
    bad = BadRows()
    for row in read_jsonl(path, bad):
        try:
            item_id, answer = _answer(row.value, row.where)
        except InputError as exc:
            bad.add(exc)
            continue
        golds[item_id] = answer
    bad.check()
    return golds


def _require_id(row: Any, where: str) -> str:
    if not isinstance(row, dict):
        raise InputError("a line must be a JSON object", where=where)
    item_id = row.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        raise InputError("field id: must be a non-empty string", where=where)
    return item_id


def _question(row: Any, where: str, category: str) -> BfclItem:
    item_id = _require_id(row, where)
    question, functions = row.get("question"), row.get("function")
    if not isinstance(question, list) or not question:
        raise InputError("field question: must be a non-empty list of turns", where=where)
    if not isinstance(functions, list):
        raise InputError("field function: must be a list of function docs", where=where)
    for i, doc in enumerate(functions):
        check_doc(doc, where, f"function[{i}]")
    return BfclItem(item_id, category, question, functions, where=where)


def check_doc(doc: Any, where: str, name: str) -> None:
    """A function doc the checker can read: a name, and parameters with object-valued properties."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise InputError(f"field {name}: a function doc needs a name", where=where)
    parameters = doc.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InputError(f"field {name}.parameters: must be an object", where=where)
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(s, dict) for s in properties.values()):
        raise InputError(f"field {name}.parameters.properties: must map names to schemas", where=where)
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise InputError(f"field {name}.parameters.required: must be a list of names", where=where)


def _answer(row: Any, where: str) -> tuple[str, list[dict[str, dict[str, list]]]]:
    item_id = _require_id(row, where)
    return item_id, check_golds(row.get("ground_truth"), where, "ground_truth")


def check_golds(value: Any, where: str, name: str) -> list[dict[str, dict[str, list]]]:
    """`[{name: {param: [values]}}]`: one function name per gold call, a list of values per parameter."""
    if not isinstance(value, list):
        raise InputError(f"field {name}: must be a list of gold calls", where=where)
    for i, gold in enumerate(value):
        if not isinstance(gold, dict) or len(gold) != 1:
            raise InputError(f"field {name}[{i}]: must be an object with one function name", where=where)
        func, params = next(iter(gold.items()))
        if not isinstance(params, dict):
            raise InputError(f"field {name}[{i}].{func}: must map parameters to lists of values", where=where)
        for param, values in params.items():
            if not isinstance(values, list):
                raise InputError(f"field {name}[{i}].{func}.{param}: must be a list of acceptable values", where=where)
    return value


@dataclass
class ResultLine:
    id: str
    result: Any
    where: str
    extra: dict[str, Any] = field(default_factory=dict)


def read_results(path: str | Path, bad: BadRows) -> list[ResultLine]:
    """The lines of a BFCL result file (or of every `*.json` / `*.jsonl` file in a directory)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file())
        if not files:
            raise InputError("no result files (*.json) in this directory", where=str(path))
    elif path.is_file():
        files = [path]
    else:
        raise InputError("no such results file", where=str(path))
    lines: list[ResultLine] = []
    for file in files:
        for row in read_jsonl(file, bad):
            try:
                item_id = _require_id(row.value, row.where)
                if "result" not in row.value:
                    raise InputError("missing field result", where=row.where)
            except InputError as exc:
                bad.add(exc)
                continue
            lines.append(ResultLine(item_id, row.value["result"], row.where,
                                    {k: v for k, v in row.value.items() if k not in ("id", "result")}))
    return lines
