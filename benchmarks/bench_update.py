"""Adding and removing articles in a large index: the write's time, part by part.

Each round adds 250 new articles (1,000 chunks: real sentences with their Kiwi morphemes,
vectors from the same mixture as `bench_search.py`) to the index at PATH through the real
write path (`rag.store.read` then `rag.store.write` under the lock, as `rag index` does after
embedding), then, with --remove, removes them again. With --cold the index's files are
dropped from the page cache before each write. Every named function the write calls is
timed (the parts overlap where one calls another); the rest is the remainder.

    python benchmarks/bench_update.py benchmarks/.cache/search-1000000 --rounds 3 --remove
    python benchmarks/bench_update.py PATH --rounds 1 --cold --json

The same script runs against an older rag (PYTHONPATH=old-checkout): parts it does not have
are left out. The machine has 2 cores: the load average is printed with each round.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_search import CHUNKS_PER_DOC, OUTLETS, UNITS_PER_CHUNK, evict, terms_of
from synth import real_texts, synthetic_vectors

from rag import store
from rag.db import ChunkRecord, DocRecord

ARTICLES = 250
# module:function of the write path, old and new; those that exist are timed.
PARTS = [
    "rag.store:read",
    "rag.writer:mark_removed",
    "rag.writer:write_records",
    "rag.db:write",
    "rag.diskio:write_npy",
    "rag.bm25:build",
    "rag.bm25:merge",
    "rag.bm25:save",
    "rag.bm25:write",
    "rag.writer:_ann",
    "rag.dense:build",
    "rag.store:_write_faiss",
    "rag.manifest:sizes_and_checksums",
    "rag.diskio:fsync",
    "rag.diskio:remove",
]
TIMES: dict[str, float] = {}


ACTIVE: set[str] = set()


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if name in ACTIVE:  # a recursive call (diskio.fsync of a directory): counted once
            return fn(*args, **kwargs)
        ACTIVE.add(name)
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            ACTIVE.discard(name)
            TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - started

    return run


def instrument() -> None:
    """Wrap every function of `PARTS` that this rag has, where it is looked up."""
    for spec in PARTS:
        module_name, attr = spec.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, attr, None)
        if fn is None:
            continue
        wrapped = _timed(f"{module_name.removeprefix('rag.')}.{attr}", fn)
        for other in list(sys.modules.values()):  # `from x import f` copies too
            name = getattr(other, "__name__", "")
            if name.startswith("rag") and getattr(other, attr, None) is fn:
                setattr(other, attr, wrapped)


def articles(round_: int, dim: int) -> tuple[list[DocRecord], list[ChunkRecord], np.ndarray]:
    """250 new articles of 4 chunks each, distinct in every round."""
    units = real_texts()
    unit_terms = terms_of(units)
    rng = np.random.default_rng(1000 + round_)
    vectors = synthetic_vectors(ARTICLES * CHUNKS_PER_DOC, seed=1000 + round_)
    assert vectors.shape[1] == dim
    now = dt.datetime.now(dt.timezone.utc)
    docs, chunks = [], []
    for d in range(ARTICLES):
        doc_id = f"new-{round_}-{d:04d}"
        texts, start = [], 0
        for c in range(CHUNKS_PER_DOC):
            picks = rng.integers(0, len(units), UNITS_PER_CHUNK)
            text = " ".join(units[u] for u in picks)
            digest = hashlib.sha256(f"{doc_id}#{c}".encode()).hexdigest()
            chunks.append(
                ChunkRecord(
                    chunk_id=f"{doc_id}#{c}",
                    doc_id=doc_id,
                    start=start,
                    end=start + len(text),
                    tokens=0,
                    hash=digest,
                    terms=" ".join(unit_terms[u] for u in picks),
                    text=text,
                )
            )
            texts.append(text)
            start += len(text) + 1
        docs.append(
            DocRecord(
                doc_id=doc_id,
                key=doc_id,
                title=texts[0][:40],
                date=dt.date(2025, 1, 1) + dt.timedelta(days=int(rng.integers(0, 300))),
                source=OUTLETS[int(rng.integers(0, len(OUTLETS)))],
                content_hash=hashlib.sha256(doc_id.encode()).hexdigest(),
                chunks=CHUNKS_PER_DOC,
                indexed_at=now,
                text=" ".join(texts),
            )
        )
    return docs, chunks, vectors


def write(path: Path, drop: set[str], new: Any, cold: bool) -> dict[str, Any]:
    """One write through the real path, timed part by part."""
    if cold:
        evict(path)
    TIMES.clear()
    started = time.perf_counter()
    with store.lock(path):
        base = store.read(path)
        opened = time.perf_counter() - started
        dim = int(base.manifest.embedder["dim"])
        docs, chunks, vectors = new or ([], [], np.zeros((0, dim), np.float32))
        m = store.write(path, base.manifest, base, drop, docs, chunks, vectors)
    total = time.perf_counter() - started
    del base
    return {
        "total_s": round(total, 2),
        "open_s": round(opened, 2),
        "write_s": round(total - opened, 2),
        "parts_s": {k: round(v, 2) for k, v in TIMES.items() if k != "store.read"},
        "chunks": m.chunks,
        "format": m.format_version,
        "segments": len(m.segments),
        "load": round(os.getloadavg()[0], 2),
        "cold": cold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--first-round", type=int, default=0, help="seed of the first round")
    parser.add_argument("--cold", action="store_true", help="evict the index before each write")
    parser.add_argument("--remove", action="store_true", help="remove each round's articles")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    instrument()
    dim = int(store.read_manifest(args.path).embedder["dim"])
    rows = []
    for r in range(args.first_round, args.first_round + args.rounds):
        new = articles(r, dim)
        row = {"round": r, "add": write(args.path, set(), new, args.cold)}
        print(json.dumps(row["add"]), file=sys.stderr, flush=True)
        if args.remove:
            row["remove"] = write(args.path, {d.doc_id for d in new[0]}, None, args.cold)
            print(json.dumps(row["remove"]), file=sys.stderr, flush=True)
        rows.append(row)
    print(json.dumps(rows, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
