"""Recall, latency, build time and memory of FAISS indexes at 10k / 100k / 1M chunks.

The corpus is every real passage vector of `synth.real_vectors` plus synthetic fill from
`synth.synthetic_vectors` up to N (below the real count: a random subset of the real ones);
queries are real KorQuAD dev questions embedded as queries. The exact top-10 comes from
``IndexFlatIP``. For each candidate index:

- recall@10: |approximate top-10 ∩ exact top-10| / 10, averaged over queries, taken from
  a k=100 search (we fetch 100 candidates for fusion), and recall@100 of those candidates;
- for SQ8 codes also "refined" recall@10: the approximate top-100 re-scored with exact
  fp32 inner products (rows gathered from the fp32 array), then the best 10; and the same
  re-scoring from a float16 copy (half the memory of fp32; not timed, it costs the same);
- latency: one query per call, as a user's search does, with faiss's default threads;
  p50/p95 in ms for k=100 (and with the re-scoring, for SQ8);
- build time (train + add) and memory (the size of ``faiss.serialize_index``).

The machine may be busy: the 1-minute load average at the start and end of every timed
block is recorded. Results are merged into benchmarks/.cache/ann_sweep.json by N (+ --tag).

    python benchmarks/ann_sweep.py                          # 10k, 100k and 1M, ~15 min
    python benchmarks/ann_sweep.py --sizes 200000 500000 --hnsw --nprobe --tag=-flat
    python benchmarks/ann_sweep.py --sizes 1000000 --hnsw HNSW32,SQ8 --ef-construction 80 \
        --ef-search 512 1024 2048 --nprobe 128 256 512 --tag=-ext
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from synth import (
    CACHE,
    DEFAULT_SHRINK,
    query_texts,
    query_vectors,
    real_vectors,
    synthetic_vectors,
)

K = 100  # candidates fetched per query, as in rag's search
EF_SEARCH = (16, 32, 64, 128, 256, 512)
NPROBE = (4, 8, 16, 32, 64, 128)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def make_corpus(n: int, real: np.ndarray, shrink: float, seed: int = 0) -> tuple[np.ndarray, int]:
    """The first rows real, the rest synthetic; returns the corpus and its real count."""
    if n <= len(real):
        rows = np.sort(np.random.default_rng(seed).permutation(len(real))[:n])
        return np.ascontiguousarray(real[rows]), n
    fill = synthetic_vectors(n - len(real), seed=seed + 1, shrink=shrink)
    return np.concatenate([real, fill]), len(real)


def nlist_for(n: int) -> int:
    """The power of 2 nearest (in log scale) to 4 * sqrt(n)."""
    return 2 ** round(math.log2(4 * math.sqrt(n)))


def overlap(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(
        np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)])
    )


def ms(times: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(times, 50)) * 1e3, 2),
        "p95": round(float(np.percentile(times, 95)) * 1e3, 2),
    }


def measure(
    index: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    base: np.ndarray,
    refine: bool,
    base16: np.ndarray | None = None,
) -> dict[str, Any]:
    """Single-query searches: recall, latency and (with ``refine``) fp32 re-scoring."""
    for q in queries[:10]:  # warm-up
        index.search(q[None], K)
    searched, rescored = [], []
    found = np.empty((len(queries), K), dtype=np.int64)
    top10 = np.empty((len(queries), 10), dtype=np.int64)
    load_start = load()
    for i, q in enumerate(queries):
        started = time.perf_counter()
        _, ids = index.search(q[None], K)
        middle = time.perf_counter()
        if refine:
            cand = ids[0][ids[0] >= 0]
            scores = base[cand] @ q
            top10[i, : min(10, len(cand))] = cand[np.argsort(-scores)[:10]]
        rescored.append(time.perf_counter() - started)
        searched.append(middle - started)
        found[i] = ids[0]
    out: dict[str, Any] = {
        "recall@10": round(overlap(found, truth, 10), 4),
        "recall@100": round(overlap(found, truth, 100), 4),
        **ms(searched),
        "load": [load_start, load()],
    }
    if refine:
        out["refined recall@10"] = round(overlap(top10, truth, 10), 4)
        out["refined p50"] = ms(rescored)["p50"]
        out["refined p95"] = ms(rescored)["p95"]
    if refine and base16 is not None:
        for i, q in enumerate(queries):
            cand = found[i][found[i] >= 0]
            scores = base16[cand].astype(np.float32) @ q
            top10[i, : min(10, len(cand))] = cand[np.argsort(-scores)[:10]]
        out["refined16 recall@10"] = round(overlap(top10, truth, 10), 4)
    return out


def index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).nbytes)


def sweep_flat(x: np.ndarray, queries: np.ndarray, truth: np.ndarray, max_q: int) -> list[dict]:
    started, load_start = time.perf_counter(), load()
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    build = {"build s": round(time.perf_counter() - started, 1), "build load": [load_start, load()]}
    row = {
        "index": "Flat",
        "params": "",
        **measure(index, queries[:max_q], truth[:max_q], x, False),
    }
    return [{**row, **build, "MB": round(x.nbytes / 2**20, 1)}]


def sweep_hnsw(
    spec: str,
    x: np.ndarray,
    train: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    ef_construction: int,
    ef_search: tuple[int, ...],
    x16: np.ndarray,
) -> list[dict]:
    refine = "SQ" in spec
    started, load_start = time.perf_counter(), load()
    index = faiss.index_factory(x.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.train(train)
    index.add(x)
    build = {"build s": round(time.perf_counter() - started, 1), "build load": [load_start, load()]}
    size = round(index_bytes(index) / 2**20, 1)
    rows = []
    for ef in ef_search:
        index.hnsw.efSearch = ef
        row = {"index": spec, "params": f"efC={ef_construction} efS={ef}"}
        measured = measure(index, queries, truth, x, refine, x16)
        rows.append({**row, **measured, **build, "MB": size})
        print_row(rows[-1])
    return rows


def sweep_ivf(
    x: np.ndarray,
    train: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    nlist: int,
    nprobe: tuple[int, ...],
    x16: np.ndarray,
) -> list[dict]:
    """IVF{nlist},Flat and IVF{nlist},SQ8 over one coarse quantizer, trained once."""
    rows = []
    centroids = None
    kmeans_s = 0.0
    for codes in ("Flat", "SQ8"):
        spec = f"IVF{nlist},{codes}"
        started, load_start = time.perf_counter(), load()
        index = faiss.index_factory(x.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
        if centroids is not None:
            # Same k-means as IVF,Flat: train() then only fits the SQ8 ranges.
            index.quantizer.add(centroids)
        index.train(train)
        if centroids is None:
            kmeans_s = time.perf_counter() - started
            centroids = index.quantizer.reconstruct_n(0, nlist)
        trained = time.perf_counter()
        index.add(x)
        done = time.perf_counter()
        build = {
            # k-means once for both: counted in each one's build time.
            "build s": round(kmeans_s + (done - started if codes == "SQ8" else done - trained), 1),
            "train s": round(kmeans_s if codes == "Flat" else trained - started + kmeans_s, 1),
            "build load": [load_start, load()],
        }
        size = round(index_bytes(index) / 2**20, 1)
        for p in nprobe:
            index.nprobe = p
            row = {"index": spec, "params": f"nprobe={p}"}
            measured = measure(index, queries, truth, x, codes == "SQ8", x16)
            rows.append({**row, **measured, **build, "MB": size})
            print_row(rows[-1])
        del index
    return rows


HEADER = (
    f"{'index':<16}{'params':<19}{'r@10':>6}{'ref32':>7}{'ref16':>7}{'r@100':>7}"
    f"{'p50':>7}{'p95':>7}"
    f"{'p50 ref':>8}{'build s':>9}{'MB':>8}  load"
)


def print_row(r: dict) -> None:
    ref = [r.get(f"refined{b} recall@10") for b in ("", "16")]
    ref32, ref16 = (f"{x:.3f}" if x is not None else "-" for x in ref)
    print(
        f"{r['index']:<16}{r['params']:<19}{r['recall@10']:>6.3f}{ref32:>7}{ref16:>7}"
        f"{r['recall@100']:>7.3f}{r['p50']:>7.2f}{r['p95']:>7.2f}{r.get('refined p50', '-'):>8}"
        f"{r['build s']:>9}{r['MB']:>8}  {r['load'][0]}->{r['load'][1]}",
        flush=True,
    )


def embed_latency(n: int) -> dict[str, Any]:
    """Single-query embedding latency with onnx-int8 on ``n`` spread-out KorQuAD questions."""
    from rag.backends import get_embedder

    embedder = get_embedder("onnx-int8")
    texts = query_texts()
    texts = [texts[i] for i in np.linspace(0, len(texts) - 1, n).round().astype(int)]
    for t in texts[:5]:
        embedder.embed_query(t)
    times, load_start = [], load()
    for t in texts:
        started = time.perf_counter()
        embedder.embed_query(t)
        times.append(time.perf_counter() - started)
    return {**ms(times), "queries": n, "load": [load_start, load()]}


def run_size(n: int, args: argparse.Namespace, real: np.ndarray, queries: np.ndarray) -> dict:
    started = time.perf_counter()
    x, n_real = make_corpus(n, real, args.shrink)
    x16 = x.astype(np.float16)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(queries, K)
    del exact
    real_share = float(np.mean(truth[:, :10] < n_real))
    nlist = nlist_for(n)
    n_train = min(n, 50 * nlist)
    train = x[np.sort(np.random.default_rng(2).permutation(n)[:n_train])]
    print(
        f"\n== N={n:,}: {n_real:,} real + {n - n_real:,} synthetic, {len(queries)} queries,"
        f" {faiss.omp_get_max_threads()} faiss threads; exact top-10 real: {real_share:.3f};"
        f" nlist={nlist}, trained on {n_train:,}; setup {time.perf_counter() - started:.0f} s"
    )
    print(HEADER)
    rows = sweep_flat(x, queries, truth, args.flat_queries)
    print_row(rows[-1])
    for spec in args.hnsw:
        if n >= 1_000_000 and spec in args.skip_1m:
            continue
        for efc in args.ef_construction:
            ef_search = tuple(args.ef_search)
            rows += sweep_hnsw(spec, x, train, queries, truth, efc, ef_search, x16)
    if args.nprobe:
        rows += sweep_ivf(x, train, queries, truth, nlist, tuple(args.nprobe), x16)
    return {
        "n": n,
        "real": n_real,
        "shrink": args.shrink,
        "queries": len(queries),
        "exact top10 real share": round(real_share, 4),
        "nlist": nlist,
        "train points": n_train,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--flat-queries", type=int, default=200, help="Flat is slow at 1M")
    parser.add_argument("--hnsw", nargs="*", default=["HNSW32", "HNSW32,SQ8"])
    parser.add_argument("--skip-1m", nargs="*", default=[], help="HNSW specs not built at 1M")
    parser.add_argument("--ef-construction", type=int, nargs="+", default=[40])
    parser.add_argument("--ef-search", type=int, nargs="+", default=list(EF_SEARCH))
    parser.add_argument("--nprobe", type=int, nargs="*", default=list(NPROBE), help="none: no IVF")
    parser.add_argument(
        "--shrink", type=float, default=DEFAULT_SHRINK, help="of the synthetic fill"
    )
    parser.add_argument("--tag", default="", help="appended to N in the JSON keys")
    parser.add_argument("--embed-queries", type=int, default=200, help="0 to skip")
    parser.add_argument("--out", type=Path, default=CACHE / "ann_sweep.json")
    args = parser.parse_args()

    real = real_vectors()
    queries = query_vectors(args.queries)
    results = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    if args.embed_queries:
        results["embed_query"] = embed = embed_latency(args.embed_queries)
        print(f"query embedding (onnx-int8): {embed}")
    for n in args.sizes:
        results[f"{n}{args.tag}"] = run_size(n, args, real, queries)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
