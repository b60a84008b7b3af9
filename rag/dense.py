"""The dense side of the index: exact FAISS search when small, an approximate index when large.

Every generation keeps the fp32 vectors in ``vectors-N.npy``, memory-mapped: they are the
source of truth (carried over by the next write, never re-quantized) and they re-score the
approximate candidates exactly. Above `config.ANN_THRESHOLD` chunks the generation also has
``ann-N.faiss``, an HNSW graph over 8-bit scalar-quantized vectors, about 0.6 GB per million
chunks instead of 1.5 GB; its parameters were chosen on real e5 embeddings by
``benchmarks/bench_search.py`` (recall@10 >= 0.99 of exact search).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import config

# Filters that keep at most this many chunks are searched exactly over the kept rows: it is
# as fast as the graph and a graph search through a narrow filter loses recall.
EXACT_SUBSET = 50_000
# Rows read from the memory-mapped vectors at a time, to bound memory while copying.
BLOCK = 65_536


def ann_spec(rows: int) -> dict[str, Any] | None:
    """The approximate index for an index of ``rows`` chunks, or ``None`` for exact search."""
    if rows < config.ann_threshold():
        return None
    return {
        "factory": config.ANN_FACTORY,
        "ef_construction": config.ANN_EF_CONSTRUCTION,
        "ef_search": config.ANN_EF_SEARCH,
    }


def build(vectors: np.ndarray, spec: dict[str, Any]) -> Any:
    """Build the approximate index of ``spec`` over ``vectors`` (rows in order)."""
    import faiss

    index: Any = faiss.index_factory(vectors.shape[1], spec["factory"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = spec["ef_construction"]
    sample = vectors[_sample_rows(len(vectors), 100_000)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    for start in range(0, len(vectors), BLOCK):
        index.add(np.ascontiguousarray(vectors[start : start + BLOCK], dtype=np.float32))
    return index


def flat(vectors: np.ndarray) -> Any:
    """An exact inner-product index over ``vectors``."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    for start in range(0, len(vectors), BLOCK):
        index.add(np.ascontiguousarray(vectors[start : start + BLOCK], dtype=np.float32))
    return index


def search(
    vectors: np.ndarray,
    exact: Any,
    ann: Any | None,
    ef_search: int,
    query: np.ndarray,
    n: int,
    mask: np.ndarray | None,
) -> dict[int, float]:
    """Top-``n`` rows by inner product with ``query``, among the rows in ``mask``.

    Args:
        vectors: All fp32 vectors (memory-mapped).
        exact: A callable returning the exact FAISS index (built on first use), used when
            there is no approximate index.
        ann: The approximate index, or ``None``.
        ef_search: HNSW's search breadth.
        query: The query vector.
        n: How many rows to return.
        mask: Rows allowed, or ``None`` for all.
    """
    import faiss

    q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    n = min(n, len(vectors))
    if n == 0:
        return {}
    if mask is not None and (ann is None or mask.sum() <= EXACT_SUBSET):
        return _exact_rows(vectors, np.flatnonzero(mask), q[0], n)
    if ann is None:
        scores, rows = exact().search(q, n)
        return {int(r): float(s) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0}
    params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
    params.efSearch = max(ef_search, n)
    if mask is not None:
        bitmap = np.packbits(mask, bitorder="little")
        params.sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    _, rows = ann.search(q, n, params=params)
    found = rows[0][rows[0] >= 0]
    return _exact_rows(vectors, np.sort(found), q[0], n)


def _exact_rows(vectors: np.ndarray, rows: np.ndarray, q: np.ndarray, n: int) -> dict[int, float]:
    """The best ``n`` of ``rows`` by exact inner product (rows read from the fp32 vectors)."""
    if len(rows) == 0:
        return {}
    scores = np.concatenate([vectors[rows[i : i + BLOCK]] @ q for i in range(0, len(rows), BLOCK)])
    n = min(n, len(rows))
    top = np.argpartition(-scores, n - 1)[:n]
    return {int(rows[i]): float(scores[i]) for i in top}


def _sample_rows(rows: int, limit: int) -> np.ndarray:
    if rows <= limit:
        return np.arange(rows)
    return np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))
