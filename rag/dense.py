"""The dense side of the index: exact FAISS search when small, an approximate index when large.

Every generation keeps the fp32 vectors in ``vectors-N.npy``, memory-mapped: they are the
source of truth (carried over by the next write, never re-quantized) and they re-score the
approximate candidates exactly. From `config.ann_threshold` chunks on the generation also has
``ann-N.faiss``, an inverted-file index over 8-bit scalar-quantized vectors (0.4 GB per
million chunks instead of 1.5 GB). ``benchmarks/ann_sweep.py`` chose it over HNSW on e5
embeddings: at 1M chunks it reaches recall@10 0.993 of exact search (after re-scoring) in 2 ms,
with 40% less memory than HNSW32,SQ8 and half its build time.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import config

# Filters that keep at most this many chunks are searched exactly over the kept rows (reading
# 10k rows from the memory-mapped vectors takes about 3 ms); wider ones through the
# approximate index with an ID selector.
EXACT_SUBSET = 10_000
# Rows read from the memory-mapped vectors at a time, to bound memory while copying.
BLOCK = 65_536
# k-means wants at least this many training points per list (FAISS warns below 39).
POINTS_PER_LIST = 50


def ann_spec(rows: int) -> dict[str, Any] | None:
    """The approximate index for ``rows`` chunks, or ``None`` for exact search.

    ``nlist`` is the power of two nearest 4 * sqrt(rows) (1,024 lists at 100k chunks, 4,096 at
    1M), fewer if there are too few rows to train it; ``nprobe`` lists are scanned per query.
    """
    if rows < config.ann_threshold():
        return None
    nlist = 2 ** round(math.log2(4 * math.sqrt(rows)))
    nlist = max(1, min(nlist, 2 ** int(math.log2(max(1, rows // POINTS_PER_LIST)))))
    return {"factory": f"IVF{nlist},SQ8", "nprobe": min(config.ANN_NPROBE, nlist)}


def build(
    vectors: Any,
    spec: dict[str, Any],
    previous: Any = None,
    start: int = 0,
    ids: np.ndarray | None = None,
) -> Any:
    """The approximate index of ``spec`` over ``vectors`` (rows in order).

    Args:
        vectors: All fp32 vectors (memory-mapped).
        spec: From `ann_spec`.
        previous: The last generation's index of the same spec, or ``None``: its trained
            lists and quantizer are reused instead of training again.
        start: With ``previous``, the rows before ``start`` are already in it unchanged (new
            articles were only appended), so only the rest is added.
        ids: Each row's id in the index (default: its row).
    """
    import faiss

    if previous is not None:
        index = faiss.clone_index(previous)
        if start == 0:
            index.reset()
    else:
        index = faiss.index_factory(vectors.shape[1], spec["factory"], faiss.METRIC_INNER_PRODUCT)
        nlist = int(spec["factory"][3:].split(",")[0])
        sample = vectors[_sample_rows(len(vectors), POINTS_PER_LIST * nlist)]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        start = 0
    return _add(index, vectors, start, ids)


def flat(vectors: Any) -> Any:
    """An exact inner-product index over ``vectors``."""
    import faiss

    return _add(faiss.IndexFlatIP(vectors.shape[1]), vectors, 0)


def search(
    vectors: Any,
    exact: Any,
    ann: Any | None,
    nprobe: int,
    query: np.ndarray,
    n: int,
    mask: np.ndarray | None,
    ids: np.ndarray | None = None,
) -> dict[int, float]:
    """Top-``n`` rows by inner product with ``query``, among the rows in ``mask``.

    Args:
        vectors: All fp32 vectors (memory-mapped).
        exact: A callable returning the exact FAISS index (built on first use), used when
            there is no approximate index.
        ann: The approximate index, or ``None``.
        nprobe: Lists the approximate index scans.
        query: The query vector.
        n: How many rows to return.
        mask: Rows allowed, or ``None`` for all.
        ids: Each row's id in ``ann``, increasing (``None``: the ids are the rows).

    Returns:
        Row -> inner product, exact also for rows the approximate index found.
    """
    import faiss

    q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    n = min(n, len(vectors))
    if n == 0:
        return {}
    if mask is not None and (ann is None or mask.sum() <= EXACT_SUBSET):
        return _exact_rows(vectors, np.flatnonzero(mask), q[0], n)
    if ann is None:
        flat_index = exact()  # built on first use, with all threads
        with _one_thread():
            scores, rows = flat_index.search(q, n)
        return {int(r): float(s) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0}
    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    if mask is not None:
        if ids is not None:  # the allowed rows' ids, as a bitmap over all ids
            allowed = np.zeros(int(ids[-1]) + 1 if len(ids) else 0, dtype=bool)
            allowed[ids[mask]] = True
            mask = allowed
        bitmap = np.packbits(mask, bitorder="little")
        params.sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    with _one_thread():
        _, rows = ann.search(q, n, params=params)
    found = rows[0][rows[0] >= 0]
    if ids is not None:
        found = np.searchsorted(ids, found)
    return _exact_rows(vectors, np.sort(found), q[0], n)


def _add(index: Any, vectors: Any, start: int, ids: np.ndarray | None = None) -> Any:
    """Add ``vectors[start:]`` to ``index`` a block at a time (they may be memory-mapped)."""
    for first in range(start, len(vectors), BLOCK):
        block = np.ascontiguousarray(vectors[first : first + BLOCK], dtype=np.float32)
        if ids is None:
            index.add(block)
        else:
            index.add_with_ids(block, np.ascontiguousarray(ids[first : first + BLOCK], np.int64))
    return index


def _exact_rows(vectors: Any, rows: np.ndarray, q: np.ndarray, n: int) -> dict[int, float]:
    """The best ``n`` of ``rows`` by exact inner product (rows read from the fp32 vectors)."""
    if len(rows) == 0:
        return {}
    # einsum, not `@`: a BLAS call leaves OpenBLAS threads spinning, which halved the ONNX
    # embedder's speed on 2 cores (search p50 at 100k chunks: 16 ms with `@`, 8 ms without).
    scores = np.concatenate(
        [np.einsum("ij,j->i", vectors[rows[i : i + BLOCK]], q) for i in range(0, len(rows), BLOCK)]
    )
    n = min(n, len(rows))
    top = np.argpartition(-scores, n - 1)[:n]
    return {int(rows[i]): float(scores[i]) for i in top}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run a one-query FAISS search on one OpenMP thread.

    Measured here: a one-query exact search over 10k vectors took 0.3 ms on one thread and
    10 ms on two while the other core was busy.
    """
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _sample_rows(rows: int, limit: int) -> np.ndarray:
    if rows <= limit:
        return np.arange(rows)
    return np.sort(np.random.default_rng(0).choice(rows, limit, replace=False))
