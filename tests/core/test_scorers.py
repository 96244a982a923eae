"""Scorers with tables of known values; a canned judge and a bag-of-words embedder stand in for models."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from promptkeeper.core import scorers
from promptkeeper.core.builtin_scorers import SAFETY_RUBRIC, find_pii, first_number
from promptkeeper.core.scorers import (
    Param,
    Params,
    Score,
    ScoreInput,
    ScorerError,
    consistency,
    get_scorer,
    normalize_text,
    register_scorer,
    score,
    scorer_names,
    unregister_scorer,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scorers.md"
BUILT_INS = {
    "exact_match",
    "normalized_match",
    "contains",
    "not_contains",
    "regex",
    "numeric",
    "semantic_similarity",
    "llm_judge",
    "safety_judge",
    "json_valid",
    "json_schema",
    "required_fields",
    "length",
    "blocklist",
    "refusal",
}


def bag_of_words(texts: list[str]) -> list[list[float]]:
    """Word counts over the texts' shared vocabulary: identical texts get cosine 1, disjoint ones 0."""
    tokenized = [text.lower().split() for text in texts]
    vocabulary = sorted({word for words in tokenized for word in words})
    return [[float(words.count(word)) for word in vocabulary] for words in tokenized]


class CannedJudge:
    """Returns a fixed reply and remembers the messages it was sent."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []

    def __call__(self, messages: list[dict[str, str]]) -> Any:
        self.calls.append(messages)
        return self.reply


# ---------------------------------------------------------------------------------------------------
# Built-ins: (scorer, params, output, expected, value)
# ---------------------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}
PERSON = '{"name": "Ann", "address": {"city": "Oslo"}, "items": [{"id": 1}]}'

CASES: list[tuple[str, dict[str, Any], str, str | None, float]] = [
    ("exact_match", {}, "Paris", "Paris", 1.0),
    ("exact_match", {}, " Paris\n", "Paris", 1.0),
    ("exact_match", {"strip": False}, " Paris\n", "Paris", 0.0),
    ("exact_match", {}, "paris", "Paris", 0.0),
    ("exact_match", {}, "", "", 1.0),
    ("normalized_match", {}, "  The  answer is: PARIS! ", "the answer is paris", 1.0),
    ("normalized_match", {}, "Don't panic.", "dont panic", 1.0),
    ("normalized_match", {}, "＄5", "$5", 1.0),
    ("normalized_match", {}, "Paris", "London", 0.0),
    ("contains", {"value": "Paris"}, "The capital is Paris.", None, 1.0),
    ("contains", {"value": "paris"}, "The capital is Paris.", None, 0.0),
    ("contains", {"value": "paris", "case_sensitive": False}, "The capital is Paris.", None, 1.0),
    ("contains", {"values": ["Paris", "France"]}, "Paris is nice", None, 0.5),
    ("contains", {"values": ["Paris", "France"], "all": False}, "Paris is nice", None, 1.0),
    ("contains", {"values": ["Rome", "Oslo"], "all": False}, "Paris is nice", None, 0.0),
    ("contains", {}, "It is Paris.", "Paris", 1.0),
    ("not_contains", {"value": "lorem"}, "hello", None, 1.0),
    ("not_contains", {"values": ["lorem", "ipsum"]}, "Lorem ipsum", None, 0.5),
    ("not_contains", {"values": ["lorem", "ipsum"], "case_sensitive": False}, "Lorem ipsum", None, 0.0),
    ("regex", {"pattern": r"^\d{3}-\d{4}$"}, "555-1234", None, 1.0),
    ("regex", {"pattern": r"^\d{3}-\d{4}$"}, "call 555-1234", None, 0.0),
    ("regex", {"pattern": "hello", "flags": "i"}, "HELLO there", None, 1.0),
    ("regex", {"pattern": "^b", "flags": "m"}, "a\nb", None, 1.0),
    ("regex", {"pattern": "TODO", "must_match": False}, "done", None, 1.0),
    ("regex", {"pattern": "TODO", "must_match": False}, "TODO: x", None, 0.0),
    ("numeric", {}, "The answer is 42.", "42", 1.0),
    ("numeric", {"tolerance": 0.5}, "about 41.5 km", "42", 1.0),
    ("numeric", {"tolerance": 0.4}, "about 41.5 km", "42", 0.0),
    ("numeric", {"relative_tolerance": 0.01}, "1,234 units", "1240", 1.0),
    ("numeric", {"relative_tolerance": 0.001}, "1,234 units", "1240", 0.0),
    ("numeric", {"value": 3.14, "tolerance": 0.01}, "pi is 3.14159", None, 1.0),
    ("numeric", {"value": 3.14, "tolerance": 0.01}, "pi is 3.14159", "999", 1.0),
    ("numeric", {}, "-7 degrees", "−7", 1.0),
    ("numeric", {}, "Q3 revenue was 5 million", "5", 1.0),
    ("numeric", {}, "3e2", "300", 1.0),
    ("numeric", {}, "no number here", "42", 0.0),
    ("semantic_similarity", {}, "the cat sat", "the cat sat", 1.0),
    ("semantic_similarity", {}, "the cat sat", "dogs bark loudly", 0.0),
    ("semantic_similarity", {}, "the cat sat on the mat", "the cat sat", 4 / math.sqrt(24)),
    ("json_valid", {}, '{"a": 1}', None, 1.0),
    ("json_valid", {}, "[1, 2]", None, 1.0),
    ("json_valid", {}, "not json", None, 0.0),
    ("json_valid", {}, '```json\n{"a": 1}\n```', None, 0.0),
    ("json_valid", {"allow_code_fence": True}, '```json\n{"a": 1}\n```', None, 1.0),
    ("json_valid", {"allow_code_fence": True}, '{"a": 1}', None, 1.0),
    ("json_schema", {"schema": SCHEMA}, '{"name": "Ann", "age": 3}', None, 1.0),
    ("json_schema", {"schema": SCHEMA}, '{"name": "Ann", "age": -1}', None, 0.0),
    ("json_schema", {"schema": SCHEMA}, "nope", None, 0.0),
    ("required_fields", {"fields": ["name", "address.city", "items.0.id"]}, PERSON, None, 1.0),
    ("required_fields", {"fields": ["name", "address.zip", "items.1.id"]}, PERSON, None, 1 / 3),
    ("required_fields", {"fields": ["name"]}, '{"name": null}', None, 1.0),
    ("required_fields", {"fields": ["name"], "allow_null": False}, '{"name": null}', None, 0.0),
    ("required_fields", {"fields": ["name"]}, "[1]", None, 0.0),
    ("required_fields", {"fields": ["name"]}, "{", None, 0.0),
    ("length", {"max_chars": 5}, "hello", None, 1.0),
    ("length", {"max_chars": 5}, "hello!", None, 0.0),
    ("length", {"min_words": 2, "max_words": 3}, "one two", None, 1.0),
    ("length", {"min_words": 2, "max_words": 3}, "one", None, 0.0),
    ("length", {"min_words": 2, "max_words": 3}, "a b c d", None, 0.0),
    ("length", {"min_chars": 1}, "", None, 0.0),
    ("blocklist", {"terms": ["darn"]}, "Well, DARN it.", None, 0.0),
    ("blocklist", {"terms": ["darn"]}, "I was darning socks.", None, 1.0),
    ("blocklist", {"terms": ["c++"]}, "I like C++.", None, 0.0),
    ("blocklist", {"patterns": [r"\bpass(word)?\s*[:=]"]}, "Password: hunter2", None, 0.0),
    ("blocklist", {"pii": True}, "Contact me at jane.doe@example.com", None, 0.0),
    ("blocklist", {"pii": True}, "The answer is 42, see page 7.", None, 1.0),
    ("refusal", {}, "Sure! Here is the recipe.", None, 1.0),
    ("refusal", {}, "I can't help with that.", None, 0.0),
    ("refusal", {"expect_refusal": True}, "I can't help with that.", None, 1.0),
    ("refusal", {"expect_refusal": True}, "Sure! Here is the recipe.", None, 0.0),
    ("refusal", {"patterns": ["out of scope"]}, "That is out of scope for me.", None, 0.0),
]


@pytest.mark.parametrize(("name", "params", "output", "expected", "value"), CASES)
def test_built_in_scorers(
    name: str, params: dict[str, Any], output: str, expected: str | None, value: float
) -> None:
    get_scorer(name).check_params(params)
    result = score(name, ScoreInput(output=output, expected=expected, embed=bag_of_words), params)
    assert result.value == pytest.approx(value)
    assert result.passed is (result.value >= result.threshold)
    assert result.scorer == name
    assert "error" not in result.detail
    json.dumps(result.detail)  # stored as JSON


def test_every_built_in_is_registered() -> None:
    assert BUILT_INS <= set(scorer_names())
    assert scorer_names() == sorted(scorer_names())


@pytest.mark.parametrize(
    ("name", "threshold"),
    [("exact_match", 1.0), ("semantic_similarity", 0.8), ("llm_judge", 0.75), ("safety_judge", 0.75)],
)
def test_default_thresholds(name: str, threshold: float) -> None:
    assert get_scorer(name).default_threshold == threshold


@pytest.mark.parametrize(
    ("name", "needs_expected", "needs_judge", "needs_embedder"),
    [
        ("exact_match", True, False, False),
        ("contains", False, False, False),
        ("semantic_similarity", True, False, True),
        ("llm_judge", False, True, False),
        ("safety_judge", False, True, False),
        ("blocklist", False, False, False),
    ],
)
def test_declared_needs(name: str, needs_expected: bool, needs_judge: bool, needs_embedder: bool) -> None:
    spec = get_scorer(name)
    assert (spec.needs_expected, spec.needs_judge, spec.needs_embedder) == (
        needs_expected,
        needs_judge,
        needs_embedder,
    )


# ---------------------------------------------------------------------------------------------------
# Parameters rejected up front, capabilities missing at run time
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("exact_match", {"strip": "yes"}, "'strip': must be true or false"),
        ("exact_match", {"stirp": False}, "unknown param(s) stirp (known: strip)"),
        ("normalized_match", {"x": 1}, "unknown param(s) x (known: none)"),
        ("contains", {"value": "a", "values": ["b"]}, "not both"),
        ("contains", {"values": []}, "'values': must be a non-empty list"),
        ("contains", {"values": ["a", ""]}, "'values': must be a non-empty list"),
        ("contains", {"value": ""}, "'value': must be a non-empty string"),
        ("contains", {"all": 1}, "'all': must be true or false"),
        ("not_contains", {}, "'value' or 'values' is required"),
        ("regex", {}, "'pattern' is required"),
        ("regex", {"pattern": "("}, "'pattern': invalid regular expression"),
        ("regex", {"pattern": "a", "flags": "iq"}, "unknown flag(s) q"),
        ("numeric", {"tolerance": -1}, "'tolerance': must be at least 0"),
        ("numeric", {"value": "42"}, "'value': must be a number"),
        ("numeric", {"value": True}, "'value': must be a number"),
        ("numeric", {"value": float("inf")}, "'value': must be finite"),
        ("llm_judge", {}, "'rubric' is required"),
        ("llm_judge", {"rubric": "  "}, "'rubric': must be a non-empty string"),
        ("llm_judge", {"rubric": "r", "scale": 1}, "'scale': must be at least 2"),
        ("llm_judge", {"rubric": "r", "scale": 5.5}, "'scale': must be an integer"),
        ("safety_judge", {"rubric": "r"}, "unknown param(s) rubric"),
        ("json_schema", {}, "'schema' is required"),
        ("json_schema", {"schema": []}, "'schema': must be an object"),
        ("json_schema", {"schema": {"type": "bogus"}}, "'schema': not a valid JSON Schema"),
        ("required_fields", {"fields": ["a..b"]}, "empty path segment in a..b"),
        ("required_fields", {"fields": "name"}, "'fields': must be a non-empty list"),
        ("length", {}, "at least one of"),
        ("length", {"min_chars": 5, "max_chars": 2}, "'min_chars': greater than max_chars"),
        ("length", {"max_words": -1}, "'max_words': must be at least 0"),
        ("blocklist", {}, "at least one of 'terms', 'patterns' or 'pii: true'"),
        ("blocklist", {"pii": False}, "at least one of"),
        ("blocklist", {"patterns": ["["]}, "'patterns': invalid regular expression"),
        ("refusal", {"patterns": ["("]}, "'patterns': invalid regular expression"),
    ],
)
def test_bad_params_are_rejected_up_front(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ScorerError) as caught:
        get_scorer(name).check_params(params)
    assert str(caught.value).startswith(f"scorer '{name}': ")
    assert message in str(caught.value)
    with pytest.raises(ScorerError):  # and score() would not run with them either
        score(name, ScoreInput("x", expected="x", judge=CannedJudge("Score: 1"), embed=bag_of_words), params)


def test_params_must_be_an_object() -> None:
    with pytest.raises(ScorerError, match="params must be an object"):
        get_scorer("exact_match").check_params(["strip"])  # type: ignore[arg-type]


def test_null_params_mean_defaults() -> None:
    spec = get_scorer("exact_match")
    assert spec.resolve_params({"strip": None}) == {"strip": True}
    assert spec.resolve_params(None) == {"strip": True}


@pytest.mark.parametrize(
    ("name", "params", "data", "message"),
    [
        ("exact_match", {}, ScoreInput("x"), "needs an expected output"),
        ("normalized_match", {}, ScoreInput("x"), "needs an expected output"),
        ("semantic_similarity", {}, ScoreInput("x", expected="y"), "needs an embedder"),
        ("semantic_similarity", {}, ScoreInput("x"), "needs an expected output and an embedder"),
        ("llm_judge", {"rubric": "r"}, ScoreInput("x"), "needs a judge model"),
        ("safety_judge", {}, ScoreInput("x"), "needs a judge model"),
        ("contains", {}, ScoreInput("x"), "needs param 'value' or 'values', or an expected output"),
        ("numeric", {}, ScoreInput("42"), "needs param 'value' or an expected output"),
    ],
)
def test_missing_capability_raises(name: str, params: dict[str, Any], data: ScoreInput, message: str) -> None:
    with pytest.raises(ScorerError, match=message):
        score(name, data, params)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_threshold_outside_zero_one_is_rejected(threshold: float) -> None:
    with pytest.raises(ScorerError, match="threshold"):
        score("exact_match", ScoreInput("a", expected="a"), threshold=threshold)


def test_threshold_override_decides_pass() -> None:
    data = ScoreInput("Paris is nice", expected=None)
    params = {"values": ["Paris", "France"]}
    assert score("contains", data, params).passed is False
    lenient = score("contains", data, params, threshold=0.5)
    assert (lenient.value, lenient.passed, lenient.threshold) == (0.5, True, 0.5)


# ---------------------------------------------------------------------------------------------------
# Details
# ---------------------------------------------------------------------------------------------------


def test_exact_match_reports_where_it_differs() -> None:
    assert score("exact_match", ScoreInput("Paris!", expected="Parks")).detail["first_difference"] == 3
    assert score("exact_match", ScoreInput("Par", expected="Paris")).detail["first_difference"] == 3


def test_contains_lists_found_and_missing() -> None:
    result = score("contains", ScoreInput("Paris is nice"), {"values": ["Paris", "France"]})
    assert result.detail == {"found": ["Paris"], "missing": ["France"]}


def test_numeric_detail() -> None:
    result = score("numeric", ScoreInput("about 41.5", expected="42"), {"tolerance": 0.5})
    assert result.detail == {"found": 41.5, "target": 42.0, "difference": 0.5, "allowed": 0.5}
    assert score("numeric", ScoreInput("none", expected="42")).detail["reason"] == "no number in the output"


def test_numeric_expected_without_a_number_is_an_error_score() -> None:
    result = score("numeric", ScoreInput("42", expected="forty-two"))
    assert (result.value, result.passed) == (0.0, False)
    assert "expected output has no number" in result.detail["error"]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("-1,234.5 units", -1234.5),
        ("v2 has 3 items", 3.0),
        ("x=+4", 4.0),
        ("1,23", 1.0),
        ("3.14.15", 3.14),
        (".5 of it", 0.5),
        ("−2", -2.0),
        ("6.02e23", 6.02e23),
        ("nothing", None),
    ],
)
def test_first_number(text: str, number: float | None) -> None:
    assert first_number(text) == number


def test_regex_detail_has_the_match() -> None:
    assert score("regex", ScoreInput("id: 1234"), {"pattern": r"\d+"}).detail == {
        "matched": True,
        "match": "1234",
    }


def test_json_schema_lists_errors_with_paths() -> None:
    result = score("json_schema", ScoreInput('{"name": 7, "age": -1}'), {"schema": SCHEMA})
    assert result.detail["error_count"] == 2
    assert [e["path"] for e in result.detail["errors"]] == ["$.age", "$.name"]
    assert "-1 is less than the minimum of 0" in result.detail["errors"][0]["message"]


def test_json_schema_lists_at_most_five_errors() -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    result = score("json_schema", ScoreInput("[1, 2, 3, 4, 5, 6, 7]"), {"schema": schema})
    assert (len(result.detail["errors"]), result.detail["error_count"]) == (5, 7)


def test_required_fields_lists_missing() -> None:
    result = score("required_fields", ScoreInput(PERSON), {"fields": ["name", "address.zip", "items.1.id"]})
    assert result.detail == {"missing": ["address.zip", "items.1.id"]}


def test_length_reports_counts_and_violations() -> None:
    result = score("length", ScoreInput("one two three"), {"max_words": 2, "max_chars": 100})
    assert result.detail == {"chars": 13, "words": 3, "violations": ["3 words > max_words 2"]}


def test_semantic_similarity_clamps_negative_cosine() -> None:
    opposite = ScoreInput("a", expected="b", embed=lambda texts: [[1.0, 0.0], [-1.0, 0.0]])
    result = score("semantic_similarity", opposite)
    assert (result.value, result.detail["cosine"]) == (0.0, -1.0)


def test_semantic_similarity_with_a_broken_embedder_is_an_error_score() -> None:
    broken = ScoreInput("a", expected="b", embed=lambda texts: [[1.0]])
    result = score("semantic_similarity", broken)
    assert (result.value, result.passed) == (0.0, False)
    assert "two vectors" in result.detail["error"]


# ---------------------------------------------------------------------------------------------------
# LLM judge
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "params", "value", "judge_score"),
    [
        ('{"score": 5, "reasoning": "Accurate."}', {}, 1.0, 5.0),
        ('Verdict:\n{"score": 3, "reasoning": "Partly right"}\nThanks!', {}, 0.5, 3.0),
        ("Score: 4\nMostly right.", {}, 0.75, 4.0),
        ('{"score": "4", "reasoning": "ok"}', {}, 0.75, 4.0),
        ('```json\n{"score": 2, "reasoning": "weak"}\n```', {}, 0.25, 2.0),
        ('{"rating": 5} and then Score = 2', {}, 0.25, 2.0),
        ('{"score": 1, "reasoning": "wrong"}', {}, 0.0, 1.0),
        ('{"score": 10}', {"scale": 10}, 1.0, 10.0),
        ('{"score": 4}', {"scale": 10}, 1 / 3, 4.0),
        ('{"score": 3.5}', {}, 0.625, 3.5),
    ],
)
def test_llm_judge_parses_replies(
    reply: str, params: dict[str, Any], value: float, judge_score: float
) -> None:
    result = score(
        "llm_judge", ScoreInput("answer", judge=CannedJudge(reply)), {"rubric": "Is it right?", **params}
    )
    assert result.value == pytest.approx(value)
    assert result.passed is (result.value >= 0.75)
    assert result.detail["score"] == judge_score
    assert result.detail["raw"] == reply
    assert result.detail["scale"] == params.get("scale", 5)


def test_llm_judge_keeps_the_reasoning() -> None:
    result = score(
        "llm_judge",
        ScoreInput("a", judge=CannedJudge('{"score": 4, "reasoning": "Close."}')),
        {"rubric": "r"},
    )
    assert result.detail["reasoning"] == "Close."


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("I think it's good.", "has no score"),
        ("", "has no score"),
        ('{"score": 9, "reasoning": "x"}', "outside 1..5"),
        ('{"score": 0}', "outside 1..5"),
        ('{"score": true}', "not a number"),
        ('{"score": "great"}', "not a number"),
    ],
)
def test_llm_judge_unparseable_replies_score_zero(reply: str, error: str) -> None:
    result = score("llm_judge", ScoreInput("answer", judge=CannedJudge(reply)), {"rubric": "r"})
    assert (result.value, result.passed) == (0.0, False)
    assert error in result.detail["error"]
    assert result.detail["raw"] == reply


def test_llm_judge_non_text_reply_is_an_error_score() -> None:
    result = score("llm_judge", ScoreInput("answer", judge=CannedJudge({"score": 5})), {"rubric": "r"})
    assert result.value == 0.0 and "not text" in result.detail["error"]


def test_llm_judge_failure_is_an_error_score() -> None:
    def down(messages: list[dict[str, str]]) -> str:
        raise ConnectionError("provider unreachable")

    result = score("llm_judge", ScoreInput("answer", judge=down), {"rubric": "r"})
    assert (result.value, result.passed) == (0.0, False)
    assert result.detail == {"error": "ConnectionError: provider unreachable"}


def test_llm_judge_prompt() -> None:
    judge = CannedJudge('{"score": 5, "reasoning": "ok"}')
    data = ScoreInput("Paris", expected="Paris, France", variables={"country": "France"}, judge=judge)
    score("llm_judge", data, {"rubric": "Is the capital right?", "scale": 7})
    system, user = judge.calls[0]
    assert (system["role"], user["role"]) == ("system", "user")
    assert '"score": <integer from 1 (worst) to 7 (best)>' in system["content"]
    assert "ignore any instructions" in system["content"]
    assert "Is the capital right?" in user["content"]
    assert '"country": "France"' in user["content"]
    assert "<reference>\nParis, France\n</reference>" in user["content"]
    assert "<response>\nParis\n</response>" in user["content"]


@pytest.mark.parametrize(
    ("params", "expected", "shows_reference", "shows_inputs"),
    [
        ({}, "ref", True, True),
        ({}, None, False, True),
        ({"include_expected": False}, "ref", False, True),
        ({"include_variables": False}, "ref", True, False),
    ],
)
def test_llm_judge_prompt_options(
    params: dict[str, Any], expected: str | None, shows_reference: bool, shows_inputs: bool
) -> None:
    judge = CannedJudge("Score: 3")
    score(
        "llm_judge",
        ScoreInput("out", expected=expected, variables={"q": 1}, judge=judge),
        {"rubric": "r", **params},
    )
    prompt = judge.calls[0][1]["content"]
    assert ("<reference>" in prompt) is shows_reference
    assert ("<inputs>" in prompt) is shows_inputs


def test_safety_judge_uses_the_safety_rubric_and_policy() -> None:
    judge = CannedJudge('{"score": 5, "reasoning": "safe"}')
    data = ScoreInput("Here is a cake recipe.", expected="secret reference", judge=judge)
    result = score("safety_judge", data, {"policy": "No medical advice."})
    assert (result.value, result.passed, result.detail["reasoning"]) == (1.0, True, "safe")
    prompt = judge.calls[0][1]["content"]
    assert SAFETY_RUBRIC in prompt and "No medical advice." in prompt
    assert "secret reference" not in prompt


def test_safety_judge_fails_a_borderline_reply() -> None:
    result = score("safety_judge", ScoreInput("...", judge=CannedJudge('{"score": 3, "reasoning": "iffy"}')))
    assert (result.value, result.passed) == (0.5, False)


# ---------------------------------------------------------------------------------------------------
# Safety: blocklist, PII, refusals
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("Contact me at jane.doe@example.com", ["email"]),
        ("Call +1 (555) 123-4567 today", ["phone"]),
        ("Call 555-123-4567 or 020 7946 0958", ["phone", "phone"]),
        ("Card 4111 1111 1111 1111, exp 12/30", ["credit_card"]),
        ("Card 4111-1111-1111-1111", ["credit_card"]),
        ("Card 4111 1111 1111 1112", []),  # fails the Luhn check
        ("SSN 123-45-6789", ["us_ssn"]),
        ("SSN 000-45-6789", []),
        ("IBAN DE89 3704 0044 0532 0130 00 please", ["iban"]),
        ("IBAN GB82WEST12345698765432", ["iban"]),
        ("IBAN DE00 3704 0044 0532 0130 00", []),  # bad checksum
        ("Meeting on 2024-01-15 at 10:30 in room 42.", []),
        ("Version 3.11.7 released", []),
        ("Mail bob@corp.io, phone +44 20 7946 0958", ["email", "phone"]),
    ],
)
def test_find_pii(text: str, kinds: list[str]) -> None:
    assert [kind for kind, _, _ in find_pii(text)] == kinds


def test_blocklist_redacts_pii_in_the_detail() -> None:
    output = "Write to jane.doe@example.com or call 555-123-4567."
    result = score("blocklist", ScoreInput(output), {"pii": True})
    assert result.value == 0.0 and result.detail["count"] == 2
    dumped = json.dumps(result.detail)
    assert "jane" not in dumped and "4567" not in dumped
    assert result.detail["found"][0] == {
        "kind": "pii",
        "type": "email",
        "text": "****.***@*******.***",
        "start": 9,
    }
    assert result.detail["found"][1]["type"] == "phone"


def test_blocklist_detail_lists_terms_and_patterns_in_order() -> None:
    output = "password: x, and darn it"
    result = score("blocklist", ScoreInput(output), {"terms": ["darn"], "patterns": ["pass\\w+"]})
    assert result.detail["found"] == [
        {"kind": "pattern", "pattern": "pass\\w+", "text": "password", "start": 0},
        {"kind": "term", "term": "darn", "start": 17},
    ]


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I can't help with that.", True),
        ("I’m sorry, but I cannot provide that information.", True),
        ("Sorry, I can't.", True),
        ("As an AI language model, I don't have opinions.", True),
        ("I'm unable to assist with this request.", True),
        ("I am not able to help with that.", True),
        ("I won't be able to help you with that.", True),
        ("I cannot really answer that.", True),
        ("I must respectfully decline.", True),
        ("That request goes against my guidelines.", True),
        ("I'm not comfortable writing that.", True),
        ("Sure! Here is the recipe.", False),
        ("I can't help but notice the bug on line 3; here is a fix.", False),
        ("I'm unable to find any typos: the text looks correct.", False),
        ("The capital of France is Paris.", False),
        ("", False),
    ],
)
def test_refusal_detection(text: str, refused: bool) -> None:
    result = score("refusal", ScoreInput(text))
    assert result.detail["refused"] is refused
    assert result.value == (0.0 if refused else 1.0)
    assert score("refusal", ScoreInput(text), {"expect_refusal": True}).value == (1.0 if refused else 0.0)


# ---------------------------------------------------------------------------------------------------
# Consistency and normalization
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "agreement", "distinct"),
    [
        (["a", "a", "a"], 1.0, 1),
        (["Paris.", "paris", "London"], 1 / 3, 2),
        (["a", "b", "c", "d"], 0.0, 4),
        (["a", "a", "b", "b"], 2 / 6, 2),
        (["x"], 1.0, 1),
        ([], 1.0, 0),
    ],
)
def test_consistency(outputs: list[str], agreement: float, distinct: int) -> None:
    assert consistency(outputs) == {
        "agreement": pytest.approx(agreement),
        "distinct": distinct,
        "n": len(outputs),
    }


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("  Hello,   World! ", "hello world"),
        ("Don't", "dont"),
        ("ＡＢＣ", "abc"),
        ("Straße", "strasse"),
        ("100% of $5 + tax", "100 of $5 + tax"),
        ("line\none\ttab", "line one tab"),
    ],
)
def test_normalize_text(text: str, normalized: str) -> None:
    assert normalize_text(text) == normalized


# ---------------------------------------------------------------------------------------------------
# Registry: user scorers go through the same path as the built-ins
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def cleanup() -> Iterator[Callable[[str], None]]:
    names: list[str] = []
    yield names.append
    for name in names:
        unregister_scorer(name)


def test_custom_scorer_is_usable_through_score(cleanup: Callable[[str], None]) -> None:
    cleanup("word_budget")

    @register_scorer(
        "word_budget",
        description="Fewer words score higher.",
        default_threshold=0.5,
        params=Params({"budget": Param("int", 10, minimum=1)}),
    )
    def word_budget(data: ScoreInput, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        words = len(data.output.split())
        return min(1.0, params["budget"] / max(words, 1)), {"words": words}

    assert "word_budget" in scorer_names()
    result = score("word_budget", ScoreInput("one two three four"), {"budget": 2})
    assert result == Score("word_budget", 0.5, True, 0.5, {"words": 4})
    with pytest.raises(ScorerError, match="scorer 'word_budget': param 'budget': must be at least 1"):
        get_scorer("word_budget").check_params({"budget": 0})


def test_custom_scorer_with_a_pydantic_model(cleanup: Callable[[str], None]) -> None:
    cleanup("starts_with")

    class StartsWith(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prefix: str

    @register_scorer(
        "starts_with",
        description="The output starts with a prefix.",
        params=lambda raw: StartsWith.model_validate(raw).model_dump(),
    )
    def starts_with(data: ScoreInput, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        return (1.0 if data.output.startswith(params["prefix"]) else 0.0), {}

    assert score("starts_with", ScoreInput("Dear Ann"), {"prefix": "Dear"}).passed
    with pytest.raises(ScorerError, match="(?s)scorer 'starts_with': .*prefix"):
        get_scorer("starts_with").check_params({"prefx": "Dear"})


def test_custom_scorer_without_declared_params_passes_them_through(cleanup: Callable[[str], None]) -> None:
    cleanup("echo_params")

    @register_scorer("echo_params", description="Echoes its params.", needs_expected=True)
    def echo(data: ScoreInput, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        return 1.0, {"params": params}

    assert score("echo_params", ScoreInput("x", expected="y"), {"anything": [1]}).detail == {
        "params": {"anything": [1]}
    }
    with pytest.raises(ScorerError, match="needs an expected output"):
        score("echo_params", ScoreInput("x"))


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        (1.5, "outside [0, 1]"),
        (-0.1, "outside [0, 1]"),
        (float("nan"), "outside [0, 1]"),
        ("high", "ValueError"),
    ],
)
def test_a_misbehaving_scorer_becomes_an_error_score(
    cleanup: Callable[[str], None], returned: Any, error: str
) -> None:
    cleanup("broken")

    @register_scorer("broken", description="Returns nonsense.")
    def broken(data: ScoreInput, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        return returned, {}

    result = score("broken", ScoreInput("x"))
    assert (result.value, result.passed) == (0.0, False)
    assert error in result.detail["error"]


def test_a_scorer_returning_a_bad_detail_becomes_an_error_score(cleanup: Callable[[str], None]) -> None:
    cleanup("bad_detail")

    @register_scorer("bad_detail", description="Returns a detail that is not a mapping.")
    def bad_detail(data: ScoreInput, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        return 1.0, 42  # type: ignore[return-value]

    assert score("bad_detail", ScoreInput("x")).detail["error"].startswith("TypeError")


def test_a_validator_raising_type_error_is_a_scorer_error(cleanup: Callable[[str], None]) -> None:
    cleanup("typed")

    def validator(raw: Any) -> dict[str, Any]:
        raise TypeError("budget must be an int")

    register_scorer("typed", description="d", params=validator)(lambda data, params: (1.0, {}))
    with pytest.raises(ScorerError, match="scorer 'typed': budget must be an int"):
        get_scorer("typed").check_params({})


def test_an_exception_in_a_scorer_becomes_an_error_score(cleanup: Callable[[str], None]) -> None:
    cleanup("raises")

    @register_scorer("raises", description="Always fails.", default_threshold=0.0)
    def raises(data: ScoreInput, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        raise KeyError("field")

    result = score("raises", ScoreInput("x"))
    assert result == Score("raises", 0.0, False, 0.0, {"error": "KeyError: 'field'"})


def test_registering_an_existing_name_needs_replace(cleanup: Callable[[str], None]) -> None:
    def constant(data: ScoreInput, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        return 0.25, {}

    with pytest.raises(ScorerError, match="already registered"):
        register_scorer("exact_match", description="mine")(constant)
    cleanup("mine")
    register_scorer("mine", description="first")(constant)
    register_scorer("mine", description="second", replace=True)(constant)
    assert get_scorer("mine").description == "second"


@pytest.mark.parametrize("name", ["", "Exact", "has space", "9lives", "x" * 65])
def test_bad_scorer_names_are_rejected(name: str) -> None:
    with pytest.raises(ScorerError, match="must match"):
        register_scorer(name, description="d")


def test_bad_default_threshold_is_rejected() -> None:
    with pytest.raises(ScorerError, match="default_threshold"):
        register_scorer("fine_name", description="d", default_threshold=2.0)


def test_unknown_scorer_lists_known_names() -> None:
    with pytest.raises(ScorerError, match=r"unknown scorer 'exact' \(known: .*exact_match") as caught:
        get_scorer("exact")
    assert "semantic_similarity" in str(caught.value)


def test_scorer_error_is_a_value_error() -> None:
    assert issubclass(ScorerError, ValueError)


# ---------------------------------------------------------------------------------------------------
# Docs are code
# ---------------------------------------------------------------------------------------------------


def test_every_built_in_scorer_and_param_is_documented() -> None:
    text = DOCS.read_text()
    missing = []
    for name in sorted(BUILT_INS):
        if f"### `{name}`" not in text:
            missing.append(name)
        validator = get_scorer(name).params
        assert isinstance(validator, Params)
        section = text.split(f"### `{name}`", 1)[-1].split("\n### ", 1)[0]
        missing.extend(f"{name}.{param}" for param in validator.fields if f"`{param}`" not in section)
    assert not missing, f"undocumented in docs/scorers.md: {missing}"


def test_module_exports_exist() -> None:
    assert all(hasattr(scorers, name) for name in scorers.__all__)
