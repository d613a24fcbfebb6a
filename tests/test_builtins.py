"""The built-in offline tools: right answers, clear refusals, no eval, a fixed clock."""

from __future__ import annotations

import json

import jsonschema
import pytest

from imaginarium.executor import builtins
from imaginarium.executor.builtins import TOOLS, add_date, calculator, convert_units, get_today_date, lookup_country
from imaginarium.executor.executor import Executor

SAMPLE_CALLS = {
    "add_date": {"date": "2024-02-28", "days": 2},
    "get_today_date": {},
    "calculator": {"expression": "(3 + 4) * 2 ** 3 - 10 / 4"},
    "convert_units": {"value": 5, "from_unit": "mi", "to_unit": "km"},
    "lookup_country": {"country": "jp"},
}


def test_add_date_crosses_leap_days_and_goes_back():
    assert add_date("2024-02-28", 2) == {"date": "2024-03-01", "weekday": "Friday"}
    assert add_date("2023-02-28", 1)["date"] == "2023-03-01"
    assert add_date("2025-01-01", -1)["date"] == "2024-12-31"
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        add_date("28/02/2024", 1)
    with pytest.raises(ValueError, match="outside years"):
        add_date("9999-12-31", 1)


def test_today_comes_from_config_not_the_machine(monkeypatch):
    monkeypatch.delenv(builtins.TODAY_ENV, raising=False)
    assert get_today_date()["date"] == builtins.DEFAULT_TODAY
    monkeypatch.setenv(builtins.TODAY_ENV, "2030-07-04")
    assert get_today_date() == {"date": "2030-07-04", "weekday": "Thursday"}


@pytest.mark.parametrize("expression, result", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2 ** 10", 1024), ("2 ^ 3", 8), ("7 // 2", 3), ("7 % 4", 3),
    ("-3 + +5", 2), ("10 / 4", 2.5), ("sqrt(16) + abs(-2)", 6), ("round(pi, 3)", 3.142), ("max(1, 5, 3)", 5),
    ("log10(1000)", 3), ("1e3 + 0.5", 1000.5), ("0.1 + 0.2", 0.3),
])
def test_calculator(expression, result):
    assert calculator(expression)["result"] == result


@pytest.mark.parametrize("expression, message", [
    ("__import__('os').system('echo hi')", "unsupported"),
    ("open('/etc/passwd')", "unsupported"),
    ("(1).__class__", "unsupported"),
    ("x + 1", "unsupported"),
    ("[1, 2]", "unsupported"),
    ("'a' * 3", "unsupported"),
    ("9 ** 9 ** 9", "too large"),
    ("10.0 ** 400", "too large"),
    ("1 / 0", "division by zero"),
    ("sqrt(-1)", "sqrt"),
    ("1 +", "cannot parse"),
    ("1" * 600, "longer than"),
])
def test_calculator_refuses_what_is_not_arithmetic(expression, message):
    with pytest.raises(ValueError, match=message):
        calculator(expression)


@pytest.mark.parametrize("value, source, target, result", [
    (10, "km", "mi", 6.213711922), (1, "lb", "kg", 0.45359237), (100, "C", "F", 212), (32, "F", "C", 0),
    (0, "K", "C", -273.15), (1, "gal", "l", 3.785411784), (90, "km/h", "m/s", 25), (1, "GiB", "MB", 1073.741824),
    (2, "h", "min", 120),
])
def test_convert_units(value, source, target, result):
    assert convert_units(value, source, target)["result"] == pytest.approx(result)


@pytest.mark.parametrize("source, target, message", [
    ("km", "kg", "cannot convert length"), ("C", "km", "only temperatures"), ("parsec", "km", "unknown unit"),
])
def test_convert_units_refuses(source, target, message):
    with pytest.raises(ValueError, match=message):
        convert_units(1, source, target)
    with pytest.raises(ValueError, match="absolute zero"):
        convert_units(-500, "C", "K")


def test_lookup_country():
    japan = lookup_country("Japan")
    assert japan == lookup_country(" jp ")
    assert (japan["capital"], japan["currency"], japan["calling_code"]) == ("Tokyo", "JPY", "+81")
    assert lookup_country("United States")["capital"] == "Washington, D.C."
    with pytest.raises(ValueError, match="did you mean Germany"):
        lookup_country("Germani")


def test_every_builtin_runs_through_the_executor_and_matches_its_returns_schema():
    tools = TOOLS()
    assert sorted(t.name for t in tools) == sorted(SAMPLE_CALLS)
    executor = Executor(tools)
    for tool in tools:
        observation = executor.execute({"name": tool.name, "arguments": SAMPLE_CALLS[tool.name]})
        assert observation.ok and observation.source == "real", (tool.name, observation)
        jsonschema.validate(json.loads(observation.content), tool.returns)


def test_bad_builtin_call_is_feedback_not_a_crash():
    executor = Executor(TOOLS())
    observation = executor.execute({"name": "lookup_country", "arguments": {"country": "Atlantis"}})
    assert (observation.status, observation.error_kind) == ("error", "exception")
    assert observation.content.startswith("ValueError: no country named 'Atlantis'")
    observation = executor.execute({"name": "add_date", "arguments": {"date": "2024-01-01", "days": 1.5}})
    assert observation.error_kind == "invalid_arguments" and "'days'" in observation.content
