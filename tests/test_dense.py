"""Dense search: the approximate index agrees with exact search, filters hold, and an index
switches between exact and approximate as it grows and shrinks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import Index, dense
from tests.test_index import _records


def _clustered(rows: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few dozen centres, like embeddings of related articles."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    x = centres[rng.integers(0, 40, rows)] + 0.6 * rng.normal(size=(rows, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, object]:
    both = _clustered(4050)  # queries near the articles, as real questions are
    vectors, queries = both[:4000], both[4000:]
    # A quarter of the lists scanned per query: a real approximate search, not a full scan.
    spec = {"factory": "IVF64,SQ8", "nprobe": 16}
    return vectors, queries, dense.build(vectors, spec)


def _exact(vectors: np.ndarray, q: np.ndarray, n: int, keep: np.ndarray | None = None) -> list:
    scores = vectors @ q
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    return list(np.argsort(-scores, kind="stable")[:n])


def test_approximate_search_matches_exact(corpus) -> None:
    vectors, queries, ann = corpus
    recall = []
    for q in queries:
        # As `Index.search` does: 100 candidates, re-scored from the fp32 vectors.
        found = dense.search(vectors, None, ann, 16, q, 100, None)
        rows = np.array(list(found))
        assert np.allclose(list(found.values()), vectors[rows] @ q, atol=1e-6)
        top = sorted(found, key=found.__getitem__, reverse=True)[:10]
        recall.append(len(set(top) & set(_exact(vectors, q, 10))) / 10)
    assert np.mean(recall) >= 0.99


@pytest.mark.parametrize("exact_subset", [dense.EXACT_SUBSET, 10])
def test_filtered_search_stays_inside_the_filter(
    corpus, exact_subset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A narrow filter is searched exactly; a wide one through the graph with a selector."""
    monkeypatch.setattr(dense, "EXACT_SUBSET", exact_subset)
    vectors, queries, ann = corpus
    keep = np.zeros(len(vectors), dtype=bool)
    keep[::3] = True
    recall = []
    for q in queries:
        found = dense.search(vectors, None, ann, 16, q, 100, keep)
        assert len(found) == 100 and all(keep[r] for r in found)
        top = sorted(found, key=found.__getitem__, reverse=True)[:10]
        recall.append(len(set(top) & set(_exact(vectors, q, 10, keep))) / 10)
    assert np.mean(recall) >= 0.97


def test_index_switches_to_approximate_above_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _records(40, "한겨레", "2024-03-01", "반도체") + _records(
        40, "KBS", "2024-04-01", "배터리"
    )
    exact = Index.create(tmp_path / "exact", embedder="fake")
    exact.add(records)
    monkeypatch.setenv("RAG_ANN_THRESHOLD", "50")
    approx = Index.create(tmp_path / "approx", embedder="fake")
    approx.add(records)

    assert exact.info().chunks >= 50 and approx.info().chunks == exact.info().chunks
    assert not list(exact.path.glob("ann-*")) and len(list(approx.path.glob("ann-*.faiss"))) == 1
    manifest = approx._snap.manifest
    assert manifest.ann == dense.ann_spec(manifest.chunks)
    assert manifest.ann is not None and manifest.ann["factory"].startswith("IVF")
    for query in ("반도체 시장", "배터리 소식 7", "12번째 기사"):
        ids = [h.chunk_id for h in exact.search(query, k=5, fusion="dense")]
        assert [h.chunk_id for h in approx.search(query, k=5, fusion="dense")] == ids
    # New articles only: the graph is extended rather than rebuilt, and still agrees.
    more = _records(10, "MBC", "2024-05-01", "조선")
    exact.add(more)
    approx.add(more)
    assert approx._snap.ann is not None and approx._snap.ann.ntotal == approx.info().chunks
    for query in ("조선 소식 3", "반도체 시장"):
        ids = [h.chunk_id for h in exact.search(query, k=5, fusion="dense")]
        assert [h.chunk_id for h in approx.search(query, k=5, fusion="dense")] == ids
    hits = approx.search("시장", k=10, source="kbs", since="2024-04-01")
    assert len(hits) == 10 and {h.source for h in hits} == {"KBS"}

    # Removing articles takes the index back under the threshold: exact search again.
    approx.remove([f"{source}-{i}" for source, n in (("KBS", 40), ("MBC", 10)) for i in range(n)])
    assert approx._snap.manifest.ann is None and not list(approx.path.glob("ann-*"))
    assert {h.source for h in approx.search("시장", k=5)} == {"한겨레"}


@pytest.mark.parametrize(
    ("rows", "spec"),
    [
        (99_999, None),
        (100_000, {"factory": "IVF1024,SQ8", "nprobe": 256}),
        (1_000_000, {"factory": "IVF4096,SQ8", "nprobe": 256}),
        (120, None),
    ],
)
def test_ann_spec(rows: int, spec: dict | None) -> None:
    assert dense.ann_spec(rows) == spec


def test_rebuild_reuses_training(corpus) -> None:
    """A later generation keeps the trained lists: rebuilt over fewer rows, or extended."""
    vectors, queries, ann = corpus
    spec = {"factory": "IVF64,SQ8", "nprobe": 16}
    fewer = dense.build(vectors[:3000], spec, previous=ann)
    extended = dense.build(vectors, spec, previous=fewer, start=3000)
    assert (fewer.ntotal, extended.ntotal, ann.ntotal) == (3000, 4000, 4000)
    for q in queries[:10]:
        found = dense.search(vectors[:3000], None, fewer, 16, q, 10, None)
        assert max(found) < 3000
        assert dense.search(vectors, None, extended, 16, q, 10, None) == dense.search(
            vectors, None, ann, 16, q, 10, None
        )
