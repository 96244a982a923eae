"""The vectors other SDKs replay (tests/data/assignment_vectors.json, tests/data/render_corpus.json)
are what the Python code computes: regenerated here and compared, so a change to assignment or
rendering that is not regenerated fails, and the TypeScript SDK's tests (which read the same files)
follow. The Python SDK's `Prompt.render` is held to the corpus too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from promptkeeper.client import Prompt
from promptkeeper.core.assignment import assign
from promptkeeper.core.templates import (
    MissingVariables,
    RenderFailed,
    content_placeholders,
    content_variables,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import assignment_vectors  # noqa: E402
import render_corpus  # noqa: E402

CORPUS = json.loads((ROOT / "tests" / "data" / "render_corpus.json").read_text())["cases"]


def test_assignment_vectors_are_current() -> None:
    current = assignment_vectors.VECTORS.read_text()
    assert current == assignment_vectors.build(), "run: python scripts/assignment_vectors.py"


def test_render_corpus_is_current() -> None:
    current = render_corpus.CORPUS.read_text()
    assert current == render_corpus.build(), "run: python scripts/render_corpus.py"


def test_assignment_vectors_cover_every_outcome() -> None:
    vectors = json.loads(assignment_vectors.VECTORS.read_text())
    indexes = {case["index"] for case in vectors["assignments"]}
    assert {-1, 0, 1, 2, 3} <= indexes
    for case in vectors["assignments"][:50]:
        plan = {k: case[k] for k in ("weights", "coverage", "hash_version")}
        assert assign(seed=case["seed"], unit=case["unit"], **plan) == case["index"]


@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_the_python_sdk_renders_the_corpus(case: dict[str, Any]) -> None:
    content = case["content"]
    prompt = Prompt.from_resolve(
        {
            "name": "corpus",
            "version": 1,
            "environment": "production",
            "revision": 1,
            "content": content,
            "variables": content_variables(content),
            "placeholders": content_placeholders(content),
        },
        etag=None,
    )
    if "output" in case:
        assert prompt.render_mapping(case["variables"]) == case["output"]
    elif case["error"] == "MissingVariables":
        with pytest.raises(MissingVariables) as missing:
            prompt.render_mapping(case["variables"])
        assert missing.value.names == case["missing"]
    else:
        with pytest.raises(RenderFailed, match="placeholder"):
            prompt.render_mapping(case["variables"])
