"""What the index's integrity checks cost: per-file checksums on write, the checks on every
open, and a full `rag info --check`, on a synthetic index written through `rag.store.write`.

    python benchmarks/bench_integrity.py --chunks 100000 --dir /tmp/bench-integrity

Chunks have 40 random words each (four per article) and random unit vectors of dimension 384
(the bundled e5 model's); the time of a write is mostly SQLite, BM25 and, from 100,000 chunks,
the approximate FAISS index.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from rag import manifest, store
from rag.db import ChunkRecord, DocRecord

DIM = 384
PER_DOC = 4


def records(n: int) -> tuple[list[DocRecord], list[ChunkRecord], np.ndarray]:
    rng = np.random.default_rng(0)
    vocab = [f"어휘{i}" for i in range(20_000)]
    now = dt.datetime.now(dt.timezone.utc)
    docs, chunks = [], []
    for d in range(n // PER_DOC):
        texts = [
            " ".join(vocab[i] for i in rng.integers(0, len(vocab), 40)) for _ in range(PER_DOC)
        ]
        for c, text in enumerate(texts):
            row = d * PER_DOC + c
            chunks.append(
                ChunkRecord(
                    chunk_id=f"d{d}#{c}",
                    doc_id=f"d{d}",
                    start=0,
                    end=len(text),
                    tokens=0,
                    hash=f"{row:064x}",
                    terms=text,
                    text=text,
                )
            )
        docs.append(
            DocRecord(
                doc_id=f"d{d}",
                key=f"d{d}",
                chunks=PER_DOC,
                indexed_at=now,
                content_hash=hashlib.sha256(str(d).encode()).hexdigest(),
                text=" ".join(texts),
            )
        )
    vectors = rng.standard_normal((len(chunks), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return docs, chunks, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.cache/integrity"))
    args = parser.parse_args()
    path = args.dir / f"chunks-{args.chunks}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    docs, chunks, vectors = records(args.chunks)
    now = dt.datetime.now(dt.timezone.utc)
    empty = store.Manifest(
        rag_version="bench",
        created=now,
        updated=now,
        embedder={"spec": "bench", "model_id": "bench", "dim": DIM},
        chunker={"max_tokens": 320, "overlap_sentences": 1},
        bm25={"k1": 1.5, "b": 0.75, "method": "lucene"},
    )
    started = time.perf_counter()
    with store.lock(path):
        written = store.write(path, empty, None, set(), docs, chunks, vectors)
    write = time.perf_counter() - started
    started = time.perf_counter()
    manifest.sizes_and_checksums(path, written.files.values())
    checksums = time.perf_counter() - started

    def median_open() -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            store.read(path)
            times.append(time.perf_counter() - started)
        return sorted(times)[2]

    with_checks = median_open()
    limit, manifest.CHECK_ON_OPEN_BYTES = manifest.CHECK_ON_OPEN_BYTES, -1
    without = median_open()
    manifest.CHECK_ON_OPEN_BYTES = limit
    started = time.perf_counter()
    _, problems = store.check(path)
    check = time.perf_counter() - started
    size = sum(written.sizes.values()) / 2**20
    print(f"{args.chunks} chunks, {size:.0f} MB, load average {os.getloadavg()[0]:.1f}")
    print(f"write {write:.1f} s, of which checksums {checksums:.2f} s")
    print(f"open {with_checks * 1000:.0f} ms ({without * 1000:.0f} ms without on-open checksums)")
    print(f"full check {check:.2f} s, problems: {problems or 'none'}")


if __name__ == "__main__":
    main()
