"""validate_completion: the one validity check every backend applies to constrained output."""

from imaginarium.models.backend import Constraint
from imaginarium.models.constraint_check import judged_completion, validate_completion

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 5}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
    "additionalProperties": False,
}


def test_json_valid_returns_parsed_value():
    assert validate_completion(Constraint.json(SCHEMA), '{"city": "Oslo", "days": 2}') == (
        True,
        {"city": "Oslo", "days": 2},
        None,
    )


def test_json_schema_violation_names_the_field():
    ok, value, error = validate_completion(Constraint.json(SCHEMA), '{"city": "Oslo", "days": 0}')
    assert (ok, value) == (False, None)
    assert "days" in error


def test_json_not_json_and_nan_rejected():
    assert validate_completion(Constraint.json(SCHEMA), '{"city": "Os')[0] is False
    ok, _, error = validate_completion(Constraint.json({"type": "number"}), "NaN")
    assert not ok and "JSON" in error


def test_invalid_schema_is_reported_not_raised():
    ok, _, error = validate_completion(Constraint.json({"type": "no-such-type"}), "1")
    assert not ok and "schema" in error


def test_regex_needs_a_full_match():
    assert validate_completion(Constraint.regex(r"[a-z]{3}"), "abc") == (True, "abc", None)
    assert validate_completion(Constraint.regex(r"[a-z]{3}"), "abcd")[0] is False
    assert validate_completion(Constraint.regex(r"("), "x")[0] is False


def test_choice_is_exact_membership():
    assert validate_completion(Constraint.choice(["yes", "no"]), "no") == (True, "no", None)
    assert validate_completion(Constraint.choice(["yes", "no"]), "no ")[0] is False


def test_no_constraint_accepts_anything():
    assert validate_completion(None, "whatever") == (True, None, None)


def test_judged_completion_maps_engine_finish_reasons():
    choice = Constraint.choice(["yes", "no"])
    assert judged_completion(choice, "yes", "stop").value == "yes"
    cut = judged_completion(choice, "yes", "length")
    assert (cut.finish_reason, cut.value) == ("length", None)  # even a matching text: cut is never valid
    assert judged_completion(choice, "maybe", "stop").finish_reason == "invalid"
    assert judged_completion(choice, "yes", "abort").finish_reason == "error"
    assert judged_completion(None, "free text", None).finish_reason == "stop"


def test_formats_are_checked():
    schema = {"type": "object", "properties": {"day": {"type": "string", "format": "date"}}}
    assert validate_completion(Constraint.json(schema), '{"day": "2024-02-30"}')[0] is False
    assert validate_completion(Constraint.json(schema), '{"day": "2024-02-29"}')[0] is True


def test_numbers_that_overflow_to_infinity_are_invalid():
    ok, value, error = validate_completion(Constraint.json({"type": "object", "properties": {"x": {"type": "number"}}}),
                                           '{"x": -1e999}')
    assert not ok and value is None and "out of range" in error
