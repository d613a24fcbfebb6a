"""Shared embeddings: the bundled all-MiniLM-L6-v2 offline, unit-length rows, blockwise top-k."""

from __future__ import annotations

import numpy as np

from imaginarium.embeddings import embed, top_k


def test_embed_gives_unit_rows_and_puts_paraphrases_closest():
    texts = ["What is the weather in Paris tomorrow?", "Tomorrow's forecast for Paris, please",
             "Convert 100 dollars to euros"]
    vectors = embed(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2
    assert embed([]).shape == (0, 384)


def test_top_k_is_exact_sorted_and_the_same_in_any_block_size():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(50, 8)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries = pool[[3, 17, 42]] + 0.01  # each query sits next to one pool row
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    indices, scores = top_k(queries, pool, k=5, block=2)
    assert indices[:, 0].tolist() == [3, 17, 42]
    assert np.all(np.diff(scores, axis=1) <= 0)
    brute = np.argsort(-(queries @ pool.T), axis=1, kind="stable")[:, :5]
    assert (indices == brute).all()
    same, _ = top_k(queries, pool, k=5, block=1024)
    assert (same == indices).all()


def test_top_k_breaks_ties_by_pool_order_and_caps_k():
    pool = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    indices, scores = top_k(np.array([[1, 0]], dtype=np.float32), pool, k=10)
    assert indices.tolist() == [[0, 2, 1]] and scores.shape == (1, 3)
