"""Realistic vectors for the vector-search benchmarks: real e5 embeddings, and more like them.

Real e5 embeddings are anisotropic and clustered, so uniform random vectors make approximate
search look far worse than it is. This module embeds real Korean text (Korean Wikinews
articles and KorQuAD 1.0 dev paragraphs) with the index's embedder, caches the vectors, and
samples any number of synthetic vectors from a Gaussian mixture fitted on the real ones (one
full-covariance component per k-means cluster; see `synthetic_vectors`).

    from synth import query_vectors, real_vectors, synthetic_vectors  # in benchmarks/

    real = real_vectors()                   # (17,808, 384) passages, embedded once, then cached
    queries = query_vectors(500)            # KorQuAD dev questions, embedded as queries
    fill = synthetic_vectors(1_000_000)     # unit vectors from the mixture fitted on `real`

    python benchmarks/synth.py              # embed (if not cached), fit, print the realism check

All vectors are float32 and unit norm; search is by inner product. Caches go to
benchmarks/.cache/ (or ``cache_dir``), keyed by a hash of the texts and the settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from rag.chunk import header, retrieval_text
from rag.korean import sentence_spans

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
DATA = HERE.parents[1] / "shared" / "data"
NEWS = DATA / "kowikinews" / "articles.jsonl"
KORQUAD = DATA / "korquad" / "KorQuAD_v1.0_dev.json"
EMBEDDER = "onnx-int8"
# Sentences shorter than this are captions and headings; our chunker never indexes them alone.
MIN_SENTENCE_CHARS = 15
# Mixture components and covariance shrinkage, chosen with the realism check in `main`. A
# scikit-learn GaussianMixture (full covariances, 8 or 32 components, ~2 min to fit) matched
# the cosine of random pairs but was too smooth: each query's 10th neighbour was 0.01-0.02
# and each vector's nearest other 0.05-0.07 further than in the real vectors, and weak ANN
# settings lost 0.07-0.36 of recall. Many small components follow the local structure.
DEFAULT_CLUSTERS = 1024
DEFAULT_SHRINK = 0.1


def _documents() -> Iterator[tuple[str, dt.date | None, str]]:
    """(title, date, text) of every Wikinews article and KorQuAD dev paragraph."""
    with NEWS.open(encoding="utf-8") as f:
        for line in f:
            article = json.loads(line)
            try:
                date = dt.date.fromisoformat(str(article.get("date") or "")[:10])
            except ValueError:
                date = None
            yield article["title"], date, article["text"]
    for article in json.loads(KORQUAD.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            yield article["title"], None, para["context"]


def real_texts(seed: int = 0) -> list[str]:
    """Real Korean text units, in a fixed order.

    Two kinds from each document: every sentence of at least `MIN_SENTENCE_CHARS`
    characters on its own, and the document cut into consecutive groups of 2-4 sentences
    (sizes drawn with ``seed``) with the title/date header our chunks get (`rag.chunk`).
    Duplicates are dropped.
    """
    return list(_real_texts(seed))


@functools.cache
def _real_texts(seed: int) -> tuple[str, ...]:
    # Splitting takes ~15 s, and every cache lookup needs the texts for its key.
    rng = np.random.default_rng(seed)
    units: dict[str, None] = {}
    for title, date, text in _documents():
        sentences = [text[a:b] for a, b in sentence_spans(text)]
        for s in sentences:
            if len(s) >= MIN_SENTENCE_CHARS:
                units.setdefault(s)
        head = header(title, date)
        start = 0
        while start < len(sentences):
            size = int(rng.integers(2, 5))
            units.setdefault(retrieval_text(head, " ".join(sentences[start : start + size])))
            start += size
    return tuple(units)


def query_texts() -> list[str]:
    """All KorQuAD 1.0 dev questions, in file order."""
    data = json.loads(KORQUAD.read_text(encoding="utf-8"))["data"]
    return [qa["question"] for a in data for p in a["paragraphs"] for qa in p["qas"]]


def _key(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:12]


def _save(path: Path, array: np.ndarray, meta: dict) -> None:
    """Write ``array`` (.npy) and ``meta`` (.json) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    with tmp.open("wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    path.with_suffix(".json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8"
    )


def _progress(label: str, total: int) -> Callable[[int], None]:
    started = time.perf_counter()
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done += n
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"\r{label}: {done}/{total} ({rate:.0f}/s)", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)

    return report


def _embed_cached(
    name: str, texts: list[str], as_query: bool, cache_dir: Path, progress: bool
) -> np.ndarray:
    path = cache_dir / f"{name}-{EMBEDDER}-{_key(texts, as_query)}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    from rag.backends import get_embedder

    embedder = get_embedder(EMBEDDER)
    report = _progress(f"embedding {name}", len(texts)) if progress else None
    started = time.perf_counter()
    if as_query:
        vectors = np.empty((len(texts), embedder.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            vectors[i] = embedder.embed_query(text)
            if report:
                report(1)
    else:
        vectors = embedder.embed_passages(texts, batch_size=64, progress=report)
    meta = {
        "embedder": EMBEDDER,
        "model_id": embedder.model_id,
        "count": len(texts),
        "as_query": as_query,
        "seconds": round(time.perf_counter() - started, 1),
    }
    _save(path, vectors, meta)
    return vectors


def real_vectors(cache_dir: Path = CACHE, progress: bool = True) -> np.ndarray:
    """`real_texts` embedded as passages with onnx-int8: ``(n, 384)`` float32, unit norm.

    The first call embeds (about 7 minutes on 2 cores) and caches under ``cache_dir``.
    """
    return _embed_cached("passages", real_texts(), False, cache_dir, progress)


def query_vectors(n: int = 1000, cache_dir: Path = CACHE, progress: bool = True) -> np.ndarray:
    """``n`` KorQuAD dev questions embedded as queries: ``(n, 384)`` float32, unit norm.

    The questions are spread evenly over the dev set (every article), not its first ``n``,
    which come from only a few articles. All 5,774 are embedded once and cached.
    """
    vectors = _embed_cached("queries", query_texts(), True, cache_dir, progress)
    n = min(n, len(vectors))
    return vectors[np.linspace(0, len(vectors) - 1, n).round().astype(int)]


def _clusters(clusters: int, cache_dir: Path, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The real vectors and their spherical k-means labels (computed once, cached)."""
    real = real_vectors(cache_dir, progress)
    path = cache_dir / f"kmeans{clusters}-{_key(real.shape, float(real.sum()), clusters)}.npy"
    if path.is_file():
        return real, np.load(path, allow_pickle=False)
    import faiss

    kmeans = faiss.Kmeans(
        real.shape[1], clusters, niter=20, seed=1, spherical=True, min_points_per_centroid=1
    )
    kmeans.train(real)
    labels = kmeans.index.search(real, 1)[1][:, 0]
    _save(path, labels, {"clusters": clusters, "real": len(real)})
    return real, labels


def synthetic_vectors(
    n: int,
    seed: int = 0,
    clusters: int = DEFAULT_CLUSTERS,
    shrink: float = DEFAULT_SHRINK,
    cache_dir: Path = CACHE,
    progress: bool = True,
) -> np.ndarray:
    """``n`` unit vectors sampled from a Gaussian mixture fitted on `real_vectors`.

    The mixture has one component per spherical k-means cluster of the real vectors, with
    the cluster's share as weight, its mean, and its full sample covariance shrunk towards
    a multiple of the identity with the same trace: ``(1 - shrink) S + shrink tr(S)/d I``.
    Samples are drawn as ``mean + sqrt((1 - shrink) / (m - 1)) g @ P + sqrt(shrink tr(S)/d) z``
    (P: the cluster's m centered points; g, z standard normal), which has exactly that
    covariance without forming the 384x384 matrices. Clusters of fewer than 3 points are
    left out. Then every row is L2-normalized.

    Args:
        n: How many vectors.
        seed: Sampling seed; the same seed gives the same vectors.
        clusters: Mixture components (k-means clusters of the ~17.8k real vectors).
        shrink: Weight of the isotropic part of each covariance.
        cache_dir: Where the real vectors and the cluster labels are cached.
        progress: Report embedding on stderr.

    Returns:
        An ``(n, 384)`` float32 array of unit rows, components interleaved at random.
    """
    real, labels = _clusters(clusters, cache_dir, progress)
    members = [np.flatnonzero(labels == k) for k in range(clusters)]
    members = [m for m in members if len(m) >= 3]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.array([len(m) for m in members]) / sum(map(len, members)))
    dim = real.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    row = 0
    for rows, count in zip(members, counts, strict=True):
        points = real[rows]
        centered = points - points.mean(axis=0)
        noise = np.sqrt(shrink * float((centered**2).sum()) / (len(rows) - 1) / dim)
        g = rng.standard_normal((count, len(rows)), dtype=np.float32)
        z = rng.standard_normal((count, dim), dtype=np.float32)
        scale = np.sqrt((1 - shrink) / (len(rows) - 1))
        out[row : row + count] = points.mean(axis=0) + scale * (g @ centered) + noise * z
        row += count
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out[rng.permutation(n)]


# The realism check ----------------------------------------------------------------------

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def _pct(x: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in np.percentile(x, PERCENTILES)]


def _random_pair_cosines(x: np.ndarray, pairs: int, rng: np.random.Generator) -> np.ndarray:
    i, j = rng.integers(0, len(x), pairs), rng.integers(0, len(x), pairs)
    keep = i != j
    return np.einsum("ij,ij->i", x[i[keep]], x[j[keep]])


def _ann_recall(corpus: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """recall@10 of a few deliberately weak ANN settings: how hard the data is to search."""
    import faiss

    dim = corpus.shape[1]
    exact = faiss.IndexFlatIP(dim)
    exact.add(corpus)
    _, truth = exact.search(queries, 10)
    hnsw = faiss.index_factory(dim, "HNSW16", faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(corpus)
    nlist = 2 ** round(np.log2(4 * np.sqrt(len(corpus))))  # as in ann_sweep.py
    ivf = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    ivf.train(corpus)
    ivf.add(corpus)
    out = {}
    for name, index, params, attr, value in (
        ("HNSW16 ef=10", hnsw, hnsw.hnsw, "efSearch", 10),
        ("HNSW16 ef=40", hnsw, hnsw.hnsw, "efSearch", 40),
        (f"IVF{nlist} nprobe=2", ivf, ivf, "nprobe", 2),
        (f"IVF{nlist} nprobe=8", ivf, ivf, "nprobe", 8),
    ):
        setattr(params, attr, value)
        _, found = index.search(queries, 10)
        hits = [len(set(a) & set(b)) for a, b in zip(found, truth, strict=True)]
        out[name] = round(float(np.mean(hits)) / 10, 3)
    return out


def scaling(
    real: np.ndarray, synthetic: np.ndarray, queries: np.ndarray, sizes: tuple[int, ...]
) -> dict[int, dict[str, dict[str, float]]]:
    """`_ann_recall` of random real subsets and synthetic vectors of the same sizes.

    Real vectors stop at ~17.8k, so this is the only check of whether the synthetic ones
    get harder to search with N at the same rate as real ones.
    """
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        subset = real[np.sort(rng.permutation(len(real))[:n])]
        out[n] = {
            "real": _ann_recall(subset, queries),
            "synthetic": _ann_recall(synthetic[:n], queries),
        }
    return out


def realism(
    real: np.ndarray, synthetic: np.ndarray, queries: np.ndarray, seed: int = 0
) -> dict[str, dict]:
    """Compare real and synthetic vectors (same count) on what matters to ANN search.

    Returns percentiles of the cosine between random pairs, of each query's 1st and 10th
    neighbour's cosine, of each vector's nearest other vector's cosine, and the recall of a
    few weak ANN settings, for ``real``, ``synthetic`` and a 50/50 mix.
    """
    rng = np.random.default_rng(seed)
    half = len(real) // 2
    mixed = np.concatenate([real[rng.permutation(len(real))[:half]], synthetic[:half]])
    sample = rng.permutation(min(len(real), len(synthetic)))[:2000]
    out: dict[str, dict] = {}
    for name, x in (("real", real), ("synthetic", synthetic), ("mixed", mixed)):
        q = queries @ x.T
        top = -np.sort(-q, axis=1)[:, :10]
        self_sims = x[sample] @ x.T
        self_sims[np.arange(len(sample)), sample] = -1
        out[name] = {
            "random pair": _pct(_random_pair_cosines(x, 200_000, rng)),
            "query top1": _pct(top[:, 0]),
            "query top10": _pct(top[:, 9]),
            "query top1-top10": _pct(top[:, 0] - top[:, 9]),
            "nearest other": _pct(self_sims.max(axis=1)),
            "ann recall@10": _ann_recall(x, queries),
        }
    cross = np.einsum(
        "ij,ij->i",
        real[rng.integers(0, len(real), 50_000)],
        synthetic[rng.integers(0, len(synthetic), 50_000)],
    )
    out["real x synthetic"] = {"random pair": _pct(cross)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Embed, fit and print the realism check.")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--clusters", type=int, nargs="+", default=[DEFAULT_CLUSTERS])
    parser.add_argument("--shrink", type=float, nargs="+", default=[DEFAULT_SHRINK])
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()

    real = real_vectors(args.cache_dir)
    queries = query_vectors(args.queries, args.cache_dir)
    print(f"{len(real)} real passages, {len(queries)} queries; percentiles {PERCENTILES}")
    results = {}
    for k in args.clusters:
        for shrink in args.shrink:
            synthetic = synthetic_vectors(len(real), 1, k, shrink, args.cache_dir)
            results[f"{k}/{shrink}"] = check = realism(real, synthetic, queries)
            print(f"\n== {k} clusters, shrink {shrink}")
            for metric in check["real"]:
                for name in ("real", "synthetic", "mixed", "real x synthetic"):
                    if metric in check[name]:
                        print(f"{metric:>17} {name:>16}: {check[name][metric]}")
            sizes = (2000, 4500, 9000, len(real))
            check["scaling"] = by_size = scaling(real, synthetic, queries, sizes)
            print("recall@10 of weak ANN settings by N:")
            for n, pair in by_size.items():
                for name, recalls in pair.items():
                    print(f"{n:>17} {name:>16}: {recalls}")
    path = args.cache_dir / "realism.json"
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
