"""Scorers for offline evaluation: the registry and its parameter declarations (built-ins: `builtin_scorers`).

A scorer turns one model output (plus the case's expected output and variables) into a value in
[0, 1] and a JSON-safe detail; `score()` adds pass/fail against a threshold. The built-ins register
through `register_scorer`, the same decorator a deployment uses to add its own, so there is one path
through the code and one way to document a scorer (docs/scorers.md).

Pure: no I/O. What needs the outside world arrives as callables on `ScoreInput`: `judge` (chat
messages -> the judge model's reply) and `embed` (texts -> vectors), supplied by the run. That keeps
these functions testable with canned judges and toy embedders, and lets a run pick any provider.

Errors: `ScorerError` (a `ValueError`) for an unknown scorer, bad parameters (the message names the
scorer and the parameter) or a missing capability (no expected output, judge or embedder). Anything
else raised inside a scorer becomes a failed score with `detail["error"]`, so one odd output never
aborts a run.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DETAIL_CHARS",
    "Param",
    "Params",
    "Score",
    "ScoreInput",
    "ScorerError",
    "ScorerSpec",
    "consistency",
    "get_scorer",
    "normalize_text",
    "register_scorer",
    "score",
    "scorer_names",
    "unregister_scorer",
]

#: Judge replies, matched texts and the like are clipped to this many characters in `Score.detail`.
DETAIL_CHARS = 4000
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ScorerError(ValueError):
    """An unknown scorer, bad parameters, or a capability the scorer needs and the input lacks."""


@dataclass(frozen=True)
class ScoreInput:
    output: str
    expected: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    judge: Callable[[list[dict[str, str]]], str] | None = None
    embed: Callable[[list[str]], list[list[float]]] | None = None


@dataclass(frozen=True)
class Score:
    scorer: str
    value: float
    passed: bool
    threshold: float
    detail: dict[str, Any] = field(default_factory=dict)


ScorerFn = Callable[[ScoreInput, dict[str, Any]], tuple[float, dict[str, Any]]]
#: Takes the params as given and returns them validated, defaults filled in; raises ValueError.
ParamsValidator = Callable[[Mapping[str, Any]], dict[str, Any]]
ParamKind = Literal["str", "text", "bool", "int", "number", "str_list", "object"]


# ---------------------------------------------------------------------------------------------------
# Parameter declarations
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter: its kind, its default (None = unset), whether it is required, a lower bound.

    Kinds: `str`; `text` (a non-empty string); `bool`; `int`; `number` (int or float, finite);
    `str_list` (a non-empty list of non-empty strings: an empty needle would match everything);
    `object` (a JSON object).
    """

    kind: ParamKind
    default: Any = None
    required: bool = False
    minimum: float | None = None

    def coerce(self, name: str, value: Any) -> Any:
        kind = self.kind
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"param '{name}': must be true or false")
            return value
        if kind in ("int", "number"):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (kind == "int" and isinstance(value, float))
            ):
                raise ValueError(f"param '{name}': must be {'an integer' if kind == 'int' else 'a number'}")
            if not math.isfinite(value):
                raise ValueError(f"param '{name}': must be finite")
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"param '{name}': must be at least {self.minimum:g}")
            return value if kind == "int" else float(value)
        if kind in ("str", "text"):
            if not isinstance(value, str) or (kind == "text" and not value.strip()):
                raise ValueError(f"param '{name}': must be a {'non-empty ' if kind == 'text' else ''}string")
            return value
        if kind == "str_list":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"param '{name}': must be a non-empty list of non-empty strings")
            return list(value)
        if not isinstance(value, Mapping):
            raise ValueError(f"param '{name}': must be an object")
        return dict(value)


@dataclass(frozen=True)
class Params:
    """A validator built from `Param` declarations: unknown names are rejected (a typo such as
    `tolerence` would otherwise silently fall back to the default), `null` counts as unset, and
    `check` sees the filled-in params for rules that span several of them."""

    fields: Mapping[str, Param] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(raw) - set(self.fields))
        if unknown:
            known = ", ".join(sorted(self.fields)) or "none"
            raise ValueError(f"unknown param(s) {', '.join(unknown)} (known: {known})")
        result: dict[str, Any] = {}
        for name, param in self.fields.items():
            if raw.get(name) is None:
                if param.required:
                    raise ValueError(f"param '{name}' is required")
                result[name] = param.default
            else:
                result[name] = param.coerce(name, raw[name])
        if self.check is not None:
            self.check(result)
        return result


def _any_params(raw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(raw)


# ---------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    fn: ScorerFn
    description: str
    needs_expected: bool = False
    needs_judge: bool = False
    needs_embedder: bool = False
    default_threshold: float = 1.0
    params: ParamsValidator = _any_params

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The params validated, with defaults filled in: what `fn` receives."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ScorerError(f"scorer '{self.name}': params must be an object")
        try:
            return self.params(params)
        except (ValueError, TypeError) as exc:  # ValueError includes pydantic's ValidationError
            raise ScorerError(f"scorer '{self.name}': {exc}") from None

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Validate up front, so a bad suite is rejected when it is saved rather than mid-run."""
        self.resolve_params(params)


_REGISTRY: dict[str, ScorerSpec] = {}


def register_scorer(
    name: str,
    *,
    description: str,
    needs_expected: bool = False,
    needs_judge: bool = False,
    needs_embedder: bool = False,
    default_threshold: float = 1.0,
    params: ParamsValidator | None = None,
    replace: bool = False,
) -> Callable[[ScorerFn], ScorerFn]:
    """Register the decorated `fn(data, params) -> (value, detail)` under `name`.

    `params` is any callable that takes the raw params and returns them validated (raising
    ValueError): a `Params(...)` declaration, or e.g. `lambda p: Model.model_validate(p).model_dump()`
    for a pydantic model. Without it, params pass through unchecked. `replace=True` is required to
    override an existing scorer, built-in or not, so two plugins cannot clash silently.
    """
    if not _NAME.match(name):
        raise ScorerError(f"scorer name '{name}' must match {_NAME.pattern}")
    if not 0.0 <= default_threshold <= 1.0:
        raise ScorerError(f"scorer '{name}': default_threshold must be between 0 and 1")

    def decorator(fn: ScorerFn) -> ScorerFn:
        if name in _REGISTRY and not replace:
            raise ScorerError(f"scorer '{name}' is already registered (pass replace=True to override it)")
        _REGISTRY[name] = ScorerSpec(
            name=name,
            fn=fn,
            description=description,
            needs_expected=needs_expected,
            needs_judge=needs_judge,
            needs_embedder=needs_embedder,
            default_threshold=default_threshold,
            params=params if params is not None else _any_params,
        )
        return fn

    return decorator


def unregister_scorer(name: str) -> None:
    """Remove a scorer (for plugins being unloaded, and tests); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def get_scorer(name: str) -> ScorerSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ScorerError(f"unknown scorer '{name}' (known: {', '.join(scorer_names())})") from None


def scorer_names() -> list[str]:
    return sorted(_REGISTRY)


def score(
    name: str, data: ScoreInput, params: Mapping[str, Any] | None = None, threshold: float | None = None
) -> Score:
    """Run one scorer. Bad params and missing capabilities raise `ScorerError`; any other failure
    inside the scorer is a failed score with `detail["error"]`."""
    spec = get_scorer(name)
    resolved = spec.resolve_params(params)
    limit = spec.default_threshold if threshold is None else float(threshold)
    if not 0.0 <= limit <= 1.0:
        raise ScorerError(f"scorer '{name}': threshold must be between 0 and 1, got {threshold}")
    missing = [
        what
        for what, needed, present in (
            ("an expected output", spec.needs_expected, data.expected is not None),
            ("a judge model", spec.needs_judge, data.judge is not None),
            ("an embedder", spec.needs_embedder, data.embed is not None),
        )
        if needed and not present
    ]
    if missing:
        raise ScorerError(f"scorer '{name}' needs {' and '.join(missing)}")
    try:
        raw_value, raw_detail = spec.fn(data, resolved)
        detail = dict(raw_detail)
        value = float(raw_value)
        if not 0.0 <= value <= 1.0:  # also catches NaN
            raise ValueError(f"scorer returned {raw_value!r}, outside [0, 1]")
    except ScorerError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad output must not abort the run
        return Score(name, 0.0, False, limit, {"error": _clip(f"{type(exc).__name__}: {exc}")})
    return Score(name, value, value >= limit, limit, detail)


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form: NFKC, casefold, Unicode punctuation (P*,
    which includes `%` and `#`) removed, whitespace runs collapsed. Symbols (S*: `$`, `+`, `=`) are
    kept, since "5" and "$5" or "a+b" and "ab" should not compare equal."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("P"))
    return " ".join(kept.split())


def _clip(text: str, limit: int = DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------
# Consistency across repeats
# ---------------------------------------------------------------------------------------------------


def consistency(outputs: list[str]) -> dict[str, float]:
    """How much a case's repeated outputs agree: the fraction of pairs identical after
    `normalize_text`, the number of distinct normalized outputs, and n. Fewer than two outputs
    agree trivially (agreement 1)."""
    counts = Counter(normalize_text(output) for output in outputs)
    n = len(outputs)
    pairs = n * (n - 1) // 2
    identical = sum(c * (c - 1) // 2 for c in counts.values())
    return {"agreement": identical / pairs if pairs else 1.0, "distinct": len(counts), "n": n}


# The built-in scorers register themselves through `register_scorer` when their module is imported;
# importing it here, after everything it uses is defined, makes the registry complete.
from promptkeeper.core import builtin_scorers  # noqa: E402, F401
