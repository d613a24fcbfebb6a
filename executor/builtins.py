"""Built-in offline tools: deterministic Python functions that really execute.

They make the quickstart and the tests run real calls without any network: date arithmetic,
today's date from a fixed clock, a calculator, unit conversion and a lookup over a small
bundled table of countries. Bad arguments raise ValueError with a message written for the
model (the executor turns it into an error observation).

The clock is fixed by configuration, never read from the machine, so that a run replays the
same way on any day: `IMAGINARIUM_TODAY` (YYYY-MM-DD) in the environment, else `DEFAULT_TODAY`.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import difflib
import math
import operator
import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from imaginarium.schemas.importers.python import python_tool
from imaginarium.schemas.toolspec import ToolSpec

DEFAULT_TODAY = "2025-01-15"
TODAY_ENV = "IMAGINARIUM_TODAY"


def _parse_date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a date written YYYY-MM-DD, got {text!r}") from None


def today() -> dt.date:
    """The configured date of 'today' (see the module docstring)."""
    return _parse_date(os.environ.get(TODAY_ENV, DEFAULT_TODAY), TODAY_ENV)


# -- dates -------------------------------------------------------------------------------------
def add_date(date: str, days: int) -> dict[str, Any]:
    """Add a number of days to a date (negative to go back) and give the resulting date.

    Args:
        date: the start date, YYYY-MM-DD
        days: how many days to add; negative numbers subtract
    """
    if abs(days) > 3_000_000:
        raise ValueError("days must be between -3000000 and 3000000")
    start = _parse_date(date, "date")
    try:
        result = start + dt.timedelta(days=days)
    except OverflowError:
        raise ValueError("the resulting date is outside years 1 to 9999") from None
    return {"date": result.isoformat(), "weekday": result.strftime("%A")}


def get_today_date() -> dict[str, Any]:
    """Get today's date."""
    now = today()
    return {"date": now.isoformat(), "weekday": now.strftime("%A")}


# -- calculator --------------------------------------------------------------------------------
_MAX_EXPRESSION = 500
_MAX_MAGNITUDE = 1e300
_MAX_EXPONENT = 1000
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log,
    "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "floor": math.floor, "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def calculator(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression: + - * / // % ** ( ), numbers, pi, e and the functions
    sqrt, abs, round, min, max, log, log10, exp, sin, cos, tan, floor, ceil.

    Args:
        expression: the expression, for example "(3 + 4) * 2 ** 3" or "sqrt(2) / 2"
    """
    if len(expression) > _MAX_EXPRESSION:
        raise ValueError(f"expression is longer than {_MAX_EXPRESSION} characters")
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" and the like: the error says it
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse expression {expression!r}") from None
    result = _evaluate(tree.body)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        result = int(result)
    elif isinstance(result, float):
        result = float(f"{result:.12g}")
    return {"expression": expression, "result": result}


def _evaluate(node: ast.AST) -> int | float:
    """Walk the parsed expression, allowing only numbers, arithmetic and listed names."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
        try:
            return _bounded(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
        except OverflowError:
            raise ValueError("the result is too large") from None
    if (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_evaluate(a) for a in node.args]
        try:
            return _bounded(_FUNCTIONS[node.func.id](*args))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{node.func.id}: {exc}") from None
    raise ValueError(f"unsupported element in expression: {ast.unparse(node)!r}")


def _bounded(value: Any) -> int | float:
    if isinstance(value, complex):
        raise ValueError("the result is not a real number")
    if abs(value) > _MAX_MAGNITUDE or (isinstance(value, float) and math.isnan(value)):
        raise ValueError("the result is too large")
    return value


# -- unit conversion ---------------------------------------------------------------------------
# unit -> (dimension, factor to the dimension's base unit); temperatures are handled apart.
_UNITS: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001), "cm": ("length", 0.01), "m": ("length", 1.0), "km": ("length", 1000.0),
    "in": ("length", 0.0254), "ft": ("length", 0.3048), "yd": ("length", 0.9144), "mi": ("length", 1609.344),
    "nmi": ("length", 1852.0),
    "mg": ("mass", 1e-6), "g": ("mass", 0.001), "kg": ("mass", 1.0), "t": ("mass", 1000.0),
    "oz": ("mass", 0.028349523125), "lb": ("mass", 0.45359237),
    "ml": ("volume", 0.001), "l": ("volume", 1.0), "m3": ("volume", 1000.0), "tsp": ("volume", 0.00492892159375),
    "tbsp": ("volume", 0.01478676478125), "cup": ("volume", 0.2365882365), "gal": ("volume", 3.785411784),
    "s": ("time", 1.0), "min": ("time", 60.0), "h": ("time", 3600.0), "day": ("time", 86400.0),
    "week": ("time", 604800.0),
    "m/s": ("speed", 1.0), "km/h": ("speed", 1 / 3.6), "mph": ("speed", 0.44704), "kn": ("speed", 1852 / 3600),
    "b": ("data", 1.0), "kb": ("data", 1e3), "mb": ("data", 1e6), "gb": ("data", 1e9), "kib": ("data", 1024.0),
    "mib": ("data", 1024.0**2), "gib": ("data", 1024.0**3),
}
_TEMPERATURES = {"c", "f", "k"}


def convert_units(value: float, from_unit: str, to_unit: str) -> dict[str, Any]:
    """Convert a quantity between units of length, mass, volume, time, speed, data size or temperature.

    Args:
        value: the quantity to convert
        from_unit: the unit of value, e.g. km, mi, kg, lb, l, gal, h, km/h, mph, MiB, C, F, K
        to_unit: the unit to convert to, of the same kind as from_unit
    """
    source, target = from_unit.strip().lower(), to_unit.strip().lower()
    if source in _TEMPERATURES or target in _TEMPERATURES:
        if not (source in _TEMPERATURES and target in _TEMPERATURES):
            raise ValueError(f"cannot convert {from_unit!r} to {to_unit!r}: only temperatures convert to temperatures")
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[source]
        if kelvin < 0:
            raise ValueError("the temperature is below absolute zero")
        result = {"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[target]
    else:
        for unit, name in ((source, from_unit), (target, to_unit)):
            if unit not in _UNITS:
                raise ValueError(f"unknown unit {name!r}; known units: {', '.join(sorted(_UNITS))}, C, F, K")
        (dim_from, factor_from), (dim_to, factor_to) = _UNITS[source], _UNITS[target]
        if dim_from != dim_to:
            raise ValueError(f"cannot convert {dim_from} ({from_unit}) to {dim_to} ({to_unit})")
        result = value * factor_from / factor_to
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": float(f"{result:.10g}")}


# -- lookup over a bundled table ---------------------------------------------------------------
@lru_cache(maxsize=1)
def _countries() -> list[dict[str, Any]]:
    text = resources.files("imaginarium.executor").joinpath("data/countries.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    for row in rows:
        row["population_millions"] = float(row["population_millions"])
        row["area_km2"] = int(row["area_km2"])
    return rows


def lookup_country(country: str) -> dict[str, Any]:
    """Look up facts about a country: capital, continent, currency, calling code, population, area.

    Args:
        country: the country's English name or its two-letter ISO code, e.g. "Japan" or "JP"
    """
    wanted = country.strip().lower()
    for row in _countries():
        if wanted in (row["country"].lower(), row["code"].lower()):
            return dict(row)
    names = [row["country"] for row in _countries()]
    close = difflib.get_close_matches(country.strip().title(), names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known countries: {', '.join(names)}"
    raise ValueError(f"no country named {country!r} in the table{hint}")


_DATE = {"type": "object", "properties": {"date": {"type": "string", "format": "date"},
                                          "weekday": {"type": "string"}},
         "required": ["date", "weekday"], "additionalProperties": False}


def TOOLS() -> list[ToolSpec]:
    """The built-in tools as ToolSpecs (with their `returns` schemas)."""
    return [
        python_tool(add_date, returns=_DATE, category="dates"),
        python_tool(get_today_date, returns=_DATE, category="dates"),
        python_tool(calculator, category="math", returns={
            "type": "object", "properties": {"expression": {"type": "string"}, "result": {"type": "number"}},
            "required": ["expression", "result"], "additionalProperties": False}),
        python_tool(convert_units, category="math", returns={
            "type": "object", "properties": {"value": {"type": "number"}, "from_unit": {"type": "string"},
                                             "to_unit": {"type": "string"}, "result": {"type": "number"}},
            "required": ["value", "from_unit", "to_unit", "result"], "additionalProperties": False}),
        python_tool(lookup_country, category="reference", returns={
            "type": "object",
            "properties": {"country": {"type": "string"}, "code": {"type": "string"}, "capital": {"type": "string"},
                           "continent": {"type": "string"}, "currency": {"type": "string"},
                           "calling_code": {"type": "string"}, "population_millions": {"type": "number"},
                           "area_km2": {"type": "integer"}},
            "required": ["country", "code", "capital", "continent", "currency", "calling_code",
                         "population_millions", "area_km2"],
            "additionalProperties": False}),
    ]
