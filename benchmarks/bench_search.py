"""Query latency, memory and approximate-search recall at 10k, 100k and 1M chunks.

For each size an index is written through the real write path (`rag.store.write`: SQLite
records, fp32 vectors, the approximate FAISS index above `RAG_ANN_THRESHOLD`, BM25 segments)
in two writes, the second adding the last 1,000 chunks as `rag index` adds new articles (a
new BM25 segment beside the first); then a fresh process opens it with `Index.open` and times
`Index.search` (k=10, default hybrid fusion, query embedding included) for real KorQuAD dev
questions, without and with filters. Last, the BM25 segments are merged into one, as the
write that the LSM policy makes merge everything would (`rag.bm25.merge`, timed, then
discarded): the worst case of a write's BM25 part.

- Vectors: real e5 embeddings of Korean Wikinews and KorQuAD text (`synth.real_vectors`),
  filled up to the size with vectors sampled from a Gaussian mixture fitted on them
  (`synth.synthetic_vectors`).
- Text: every chunk is three real text units (sentences or short passages) drawn at random,
  with their Kiwi morphemes for BM25, so the BM25 postings have real term statistics.
- Articles: four chunks each, dated over 2009-2024, from 20 outlets.
- Memory: the measuring process's peak resident set (VmHWM) after opening the index and
  running every query (model, Kiwi, records, approximate index and the memory-mapped pages
  that searches touched), and its resident anonymous and file-backed parts. With
  --memory-limit MB the process runs in a cgroup-v1 memory group of that size, with the index
  evicted from the page cache first: the kernel must keep it, page cache included, within
  the limit (evicting and re-reading mapped pages) or kill it.
- Recall: the dense top 10 of the shipped search path against exact inner-product search over
  all fp32 vectors, for the same query vectors (1.0 by construction below the threshold).

    python benchmarks/bench_search.py                         # 10k, 100k, 1M
    python benchmarks/bench_search.py --sizes 10000 --queries 100
    python benchmarks/bench_search.py --json

Indexes are kept under benchmarks/.cache/search-N/ (1M takes about 4 GB of disk) and reused
by the next run unless --rebuild. The machine has 2 cores: the load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from synth import CACHE, query_texts, real_texts, real_vectors, synthetic_vectors

from rag import Index, store
from rag.db import ChunkRecord, DocRecord
from rag.korean import KIWI_OPTIONS, morphemes_batch

CHUNKS_PER_DOC = 4
APPEND = 1000  # chunks added by a second write, to time an update of a large index
UNITS_PER_CHUNK = 3
OUTLETS = [f"언론사{i:02d}" for i in range(20)]
FIRST_DAY = dt.date(2009, 1, 1).toordinal()
DAYS = 16 * 365


def terms_of(units: list[str]) -> list[str]:
    """Kiwi morphemes of every unit, space-joined, cached (Kiwi takes a minute for all)."""
    analyzer = f"{version('kiwipiepy')} {sorted(KIWI_OPTIONS.items())}"
    key = hashlib.sha256("\0".join([analyzer, *units]).encode()).hexdigest()[:12]
    path = CACHE / f"terms-{key}.json"
    if path.is_file():
        return list(json.loads(path.read_text(encoding="utf-8")))
    terms = [" ".join(t) for t in morphemes_batch(units)]
    path.write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
    return terms


def build(path: Path, size: int) -> tuple[float, float]:
    """Write an index of ``size`` chunks at ``path``: all but the last `APPEND` chunks in one
    write, then those in a second (as `rag index` adds new articles). Returns both times."""
    units = real_texts()
    unit_terms = terms_of(units)
    real = real_vectors()
    vectors = np.concatenate([real[:size], synthetic_vectors(max(0, size - len(real)), seed=1)])
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(units), (size, UNITS_PER_CHUNK))
    now = dt.datetime.now(dt.timezone.utc)
    docs, chunks = [], []
    for d in range(0, size, CHUNKS_PER_DOC):
        doc_id = f"doc-{d // CHUNKS_PER_DOC:07d}"
        texts, start = [], 0
        for row in range(d, min(d + CHUNKS_PER_DOC, size)):
            text = " ".join(units[u] for u in picks[row])
            chunks.append(
                ChunkRecord(
                    chunk_id=f"{doc_id}#{row - d}",
                    doc_id=doc_id,
                    start=start,
                    end=start + len(text),
                    tokens=0,
                    hash=f"{row:064x}",
                    terms=" ".join(unit_terms[u] for u in picks[row]),
                    text=text,
                )
            )
            texts.append(text)
            start += len(text) + 1
        docs.append(
            DocRecord(
                doc_id=doc_id,
                key=doc_id,
                title=units[picks[d][0]][:40],
                date=dt.date.fromordinal(FIRST_DAY + int(rng.integers(0, DAYS))),
                source=OUTLETS[int(rng.integers(0, len(OUTLETS)))],
                content_hash=hashlib.sha256(doc_id.encode()).hexdigest(),
                chunks=len(texts),
                indexed_at=now,
                text=" ".join(texts),
            )
        )
    Index.create(path, embedder="onnx-int8")
    cut = size - APPEND
    seconds = []
    for part in (slice(0, cut), slice(cut, size)):
        started = time.perf_counter()
        with store.lock(path):
            base = store.read(path)
            part_docs = docs[part.start // CHUNKS_PER_DOC : part.stop // CHUNKS_PER_DOC]
            store.write(path, base.manifest, base, set(), part_docs, chunks[part], vectors[part])
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


def memory() -> dict[str, float]:
    """This process's resident memory in MB, from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def evict(path: Path) -> None:
    """Drop the index's files from the page cache."""
    for file in path.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


class Cgroup:
    """A cgroup-v1 memory group, or a stand-in that does nothing where none can be made."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def join(self) -> None:
        """Move the calling process into the group (used as a subprocess preexec_fn)."""
        if self.directory:
            (self.directory / "tasks").write_text(str(os.getpid()))

    def peak_mb(self) -> int | None:
        """Peak memory charged to the group (resident pages and page cache), in MB."""
        if not self.directory:
            return None
        return int((self.directory / "memory.max_usage_in_bytes").read_text()) // 2**20


@contextlib.contextmanager
def memory_cgroup(limit_mb: int) -> Iterator[Cgroup]:
    """A memory cgroup limited to ``limit_mb``: the kernel must keep the measured process,
    page cache of its memory-mapped files included, within it or kill it."""
    root = Path("/sys/fs/cgroup/memory")
    directory = root / f"rag-bench-{os.getpid()}"
    if not limit_mb:
        yield Cgroup(None)
        return
    try:
        directory.mkdir()
        (directory / "memory.limit_in_bytes").write_text(str(limit_mb * 2**20))
    except OSError:
        print(f"no memory cgroup here ({root}): measuring without a limit", file=sys.stderr)
        yield Cgroup(None)
        return
    try:
        yield Cgroup(directory)
    finally:
        directory.rmdir()


def exact_top10(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Rows of the 10 best vectors for each query by exact inner product, a block at a time
    (so the 1M-chunk run stays inside its memory limit)."""
    from rag import dense

    best = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    rows = np.zeros((len(queries), 10), dtype=np.int64)
    with store.sequential(vectors):
        for start in range(0, len(vectors), dense.BLOCK):
            block = np.asarray(vectors[start : start + dense.BLOCK])
            scores = np.concatenate([best, queries @ block.T], axis=1)
            ids = np.concatenate(
                [rows, np.broadcast_to(start + np.arange(len(block)), (len(queries), len(block)))],
                axis=1,
            )
            top = np.argpartition(-scores, 9, axis=1)[:, :10]
            best, rows = np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)
    return rows


def measure(path: Path, queries: int) -> dict[str, Any]:
    """Open the index at ``path`` and time searches; runs in its own process."""
    from rag import config
    from rag.retrieve import dense_scores

    started = time.perf_counter()
    index = Index.open(path)
    embedder = index.embedder
    opened = time.perf_counter() - started
    texts = query_texts()
    texts = [texts[i] for i in np.linspace(0, len(texts) - 1, queries).round().astype(int)]
    for q in texts[:5]:  # warm-up: model, Kiwi, first page faults
        index.search(q, k=10)
    load = os.getloadavg()[0]
    runs: dict[str, list[float]] = {"embed": [], "search": [], "since 2017": [], "outlet": []}
    filters = {
        "search": {},
        "since 2017": {"since": "2017-01-01"},
        "outlet": {"source": "언론사07"},
    }
    for q in texts:
        t = time.perf_counter()
        embedder.embed_query(q)
        runs["embed"].append(time.perf_counter() - t)
        for name, options in filters.items():
            t = time.perf_counter()
            hits = index.search(q, k=10, **options)
            runs[name].append(time.perf_counter() - t)
            assert len(hits) == 10
    mem = memory()
    snap = index._snap
    qv = np.stack([embedder.embed_query(q) for q in texts])
    truth = exact_top10(qv, snap.vectors)
    recall = []
    for i, q in enumerate(qv):
        found = dense_scores(snap, q, config.FUSION_CANDIDATES, None)  # as Index.search does
        top = sorted(found, key=found.__getitem__, reverse=True)[:10]
        recall.append(len(set(top) & set(truth[i].tolist())) / 10)
    ms = {name: np.array(times) * 1000 for name, times in runs.items()}
    return {
        "chunks": len(snap),
        "dense": snap.manifest.ann["factory"] if snap.manifest.ann else "exact (Flat)",
        "open_s": round(opened, 2),
        "queries": len(texts),
        "load": round(load, 2),
        **{f"{n}_p50_ms": round(float(np.percentile(v, 50)), 1) for n, v in ms.items()},
        **{f"{n}_p95_ms": round(float(np.percentile(v, 95)), 1) for n, v in ms.items()},
        "recall@10": round(float(np.mean(recall)), 4),
        "peak_rss_mb": round(mem["VmHWM"]),
        "rss_anon_mb": round(mem["RssAnon"]),
        "rss_file_mb": round(mem["RssFile"]),
        "disk_mb": round(store.disk_size(path, snap.manifest) / 2**20),
    }


def merge_seconds(path: Path) -> float | None:
    """Seconds to merge all BM25 segments of the index at ``path`` into one and save it
    (into a temporary directory, removed after), or None if it has a single segment."""
    import shutil
    import tempfile

    from rag import bm25

    lexical = store.read(path).bm25
    if not isinstance(lexical, bm25.Segments) or len(lexical.segments) < 2:
        return None
    started = time.perf_counter()
    merged = bm25.merge([(s.postings, s.live) for s in lexical.segments])
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        bm25.save(merged, Path(tmp) / "bm25-0")
        seconds = time.perf_counter() - started
        shutil.rmtree(Path(tmp) / "bm25-0")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rebuild", action="store_true", help="rewrite cached indexes")
    parser.add_argument(
        "--memory-limit",
        type=int,
        default=0,
        help="run the measuring process in a memory cgroup of this many MB (0: no limit)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.queries)))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        path = CACHE / f"search-{size}"
        built: tuple[float, float] | None = None
        if args.rebuild or not (path / store.MANIFEST).is_file():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
            print(f"writing {size:,} chunks to {path} ...", file=sys.stderr)
            built = build(path, size)
        print(f"measuring {size:,} chunks ...", file=sys.stderr)
        cmd = [sys.executable, __file__, "--measure", str(path), "--queries", str(args.queries)]
        limit = {}
        if args.memory_limit:
            evict(path)  # so the measured process loads the index itself, charged to its cgroup
        with memory_cgroup(args.memory_limit) as group:
            out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=group.join)
            if out.returncode:
                sys.exit(f"measuring {path} failed (exit {out.returncode}):\n{out.stderr}")
            if args.memory_limit:
                limit = {"cgroup_limit_mb": args.memory_limit, "cgroup_peak_mb": group.peak_mb()}
        writes: dict[str, float | None] = {"write_s": None, "append_s": None}
        if built:
            writes = {"write_s": round(built[0], 1), "append_s": round(built[1], 1)}
        merge = merge_seconds(path)
        writes["bm25_merge_s"] = round(merge, 1) if merge is not None else None
        rows.append({"size": size, **writes, **json.loads(out.stdout), **limit})
        print(json.dumps(rows[-1]), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        "| chunks | dense | search p50 / p95 | + since filter | + outlet filter | "
        "query embed p50 | recall@10 | peak RSS (anon + file) | disk | write | "
        f"+ {APPEND:,} chunks | BM25 full merge |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        write = f"{r['write_s']} s | {r['append_s']} s" if r["write_s"] else "cached | cached"
        print(
            f"| {r['chunks']:,} | {r['dense']} | {r['search_p50_ms']} / {r['search_p95_ms']} ms"
            f" | {r['since 2017_p50_ms']} / {r['since 2017_p95_ms']} ms"
            f" | {r['outlet_p50_ms']} / {r['outlet_p95_ms']} ms | {r['embed_p50_ms']} ms"
            f" | {r['recall@10']} | {r['peak_rss_mb']} MB ({r['rss_anon_mb']} + {r['rss_file_mb']})"
            f" | {r['disk_mb']} MB | {write} | {r['bm25_merge_s']} s |"
        )
    print(f"load average during the runs: {', '.join(str(r['load']) for r in rows)}")
    for r in rows:
        if "cgroup_peak_mb" in r:
            print(f"{r['chunks']:,} chunks: {r['cgroup_peak_mb']} MB of {r['cgroup_limit_mb']} MB")


if __name__ == "__main__":
    main()
