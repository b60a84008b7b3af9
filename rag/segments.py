"""Format 4: an index's chunks in immutable segments that its generations share.

Copying a million chunks' records (3 GB of SQLite) and vectors (1.5 GB) into every new
generation made adding 1,000 chunks to them take 6-26 s (removing them 90-160 s). Here, as
BM25 already was (`rag.bm25`), everything kept per chunk lives in segments, each written once
and kept by later generations; a generation adds one segment and small files of its own::

    seg-G/              the chunks generation G wrote: new ones, or older segments merged
        records.sqlite  documents, chunks (row = row in the segment) and outlets (`rag.db`),
                        with an index of chunks by document
        vectors.npy     fp32, one row per chunk
        ids.npy         int64 per chunk, increasing: its id in the approximate index
        vocab.json ...  BM25 postings (`rag.bm25`)
    live-N.npy          bool per chunk of all segments in order, False once removed
    docs-N.npy          bool per document of all segments (SQLite rowid order), likewise
    filters-N.npy       per live chunk: date ordinal and outlet code
    ann-N.faiss         the approximate index over the live chunks, by id

Row r of the index is the r-th live chunk in segment order. Removing articles writes only
the masks (and the approximate index, minus their ids): no row is renumbered, and since the
approximate index holds ids, not rows, merging segments does not touch it either. Segments
are merged by `rag.bm25.merge_start`'s LSM policy. Outlet codes never change: the newest
segment's outlets table holds every one given so far.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import bm25, db, diskio
from .errors import IndexCorrupt

RECORDS, VECTORS, IDS = "records.sqlite", "vectors.npy", "ids.npy"
INDEX_SQL = "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id)"
_SAMPLE_ROWS = 32


class Rows:
    """The live chunks' vectors of every segment, read like one memory-mapped array."""

    def __init__(self, arrays: list[np.ndarray], live: np.ndarray, dim: int) -> None:
        self.arrays = arrays
        self.starts = np.cumsum([0, *(len(a) for a in arrays)])
        self.physical = np.flatnonzero(live)
        self.shape = (len(self.physical), dim)
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return len(self.physical)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return self._gather(self.physical[[int(key)]])[0]
        return self._gather(self.physical[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)

    def _gather(self, physical: np.ndarray) -> np.ndarray:
        out = np.empty((len(physical), self.shape[1]), dtype=np.float32)
        if not len(physical):
            return out
        order = None
        if (np.diff(physical) < 0).any():
            order = np.argsort(physical, kind="stable")
            physical = physical[order]
        segment = np.searchsorted(self.starts, physical, side="right") - 1
        bounds = np.searchsorted(segment, np.arange(len(self.arrays) + 1))
        for s, array in enumerate(self.arrays):
            a, b = int(bounds[s]), int(bounds[s + 1])
            if a == b:
                continue
            local = physical[a:b] - self.starts[s]
            if int(local[-1] - local[0]) == b - a - 1:  # a run: a plain slice of the map
                out[a:b] = array[int(local[0]) : int(local[-1]) + 1]
            else:
                out[a:b] = array[local]
        if order is not None:
            unsorted = np.empty_like(out)
            unsorted[order] = out
            return unsorted
        return out


class _SegmentRecords(db.Records):
    """One segment's SQLite file, with its numbers of chunks and documents."""

    def __init__(self, file: Path, index_path: Path) -> None:
        super().__init__(file, index_path)
        (self.documents, self.rows), *_ = self._query(
            "SELECT (SELECT coalesce(max(rowid), 0) FROM documents), "
            "(SELECT coalesce(max(row) + 1, 0) FROM chunks)"
        )

    def __len__(self) -> int:
        return int(self.rows)


class Records:
    """The records of every segment, read as `db.Records` reads one file: by live row, and
    without removed documents and chunks."""

    def __init__(self, parts: list[_SegmentRecords], live: np.ndarray, docs: np.ndarray) -> None:
        self.parts = parts
        self.live, self.doc_live = live, docs
        self.starts = np.cumsum([0, *(len(p) for p in parts)])
        self.doc_starts = np.cumsum([0, *(p.documents for p in parts)])
        self.physical = np.flatnonzero(live)

    def counts(self) -> tuple[int, int]:
        """Numbers of live documents and chunks."""
        return int(self.doc_live.sum()), len(self.physical)

    def chunks(self, rows: Sequence[int]) -> list[db.ChunkRecord]:
        """The chunks at live ``rows``, in that order."""
        physical = self.physical[np.asarray(rows, dtype=np.int64)]
        segment = np.searchsorted(self.starts, physical, side="right") - 1
        found: list[db.ChunkRecord | None] = [None] * len(physical)
        for s in np.unique(segment):
            at = np.flatnonzero(segment == s)
            records = self.parts[s].chunks((physical[at] - self.starts[s]).tolist())
            for i, record in zip(at, records, strict=True):
                found[i] = record
        return [r for r in found if r is not None]

    def all_chunks(self) -> Iterator[db.ChunkRecord]:
        """Every live chunk, in row order."""
        for s, part in enumerate(self.parts):
            live = self.live[self.starts[s] : self.starts[s + 1]]
            for row, record in enumerate(part.all_chunks()):
                if live[row]:
                    yield record

    def chunk_hashes(self) -> dict[str, int]:
        """Live row of every live chunk by the hash of its retrieval text."""
        rank = np.cumsum(self.live) - 1
        found: dict[str, int] = {}
        for s, part in enumerate(self.parts):
            live = self.live[self.starts[s] : self.starts[s + 1]]
            if not live.any():
                continue
            if live.all():  # SQLite adds the first row's live row: no Python loop over the rows
                offset = int(rank[self.starts[s]])
                found.update(part._query("SELECT hash, row + ? FROM chunks", [offset]))
                continue
            pairs = part._query("SELECT hash, row FROM chunks")
            rows = np.asarray([r for _, r in pairs], dtype=np.int64) + self.starts[s]
            keep, ranks = self.live[rows].tolist(), rank[rows].tolist()
            found.update((h, r) for (h, _), r, k in zip(pairs, ranks, keep, strict=True) if k)
        return found

    def docs(self, ids: Any = None, text: bool = True) -> dict[str, db.DocRecord]:
        """Live documents by id, in the order they were added (all when ``ids`` is None)."""
        cols = db._columns(db.DOC_COLUMNS) if text else db._columns(db.DOC_COLUMNS[:-1]) + ", ''"
        out: dict[str, db.DocRecord] = {}
        for s, part in enumerate(self.parts):
            if ids is None:
                rows = part._query(f"SELECT rowid, {cols} FROM documents ORDER BY rowid")
            else:
                sql = f"SELECT rowid, {cols} FROM documents WHERE doc_id IN ({{}})"
                rows = part._query_in(sql, list(dict.fromkeys(ids)))
            for rowid, *values in rows:
                if self.doc_live[self.doc_starts[s] + rowid - 1]:
                    doc = db.DocRecord(**dict(zip(db.DOC_COLUMNS, values, strict=True)))
                    out[doc.doc_id] = doc
        return out

    def doc_ids_under(self, path: str) -> list[str]:
        """Ids of the live documents read from file ``path`` or from files under it."""
        folder = path.rstrip("/")
        sql = (
            "SELECT rowid, doc_id FROM documents WHERE path = ? OR (path >= ? AND path < ?) "
            "ORDER BY rowid"
        )
        found = []
        for s, part in enumerate(self.parts):
            for rowid, doc_id in part._query(sql, [path, folder + "/", folder + "0"]):
                if self.doc_live[self.doc_starts[s] + rowid - 1]:
                    found.append(doc_id)
        return found

    def outlet_code(self, name: str) -> int:
        """The code of outlet ``name`` in ``filters`` (-2 if none was given to it)."""
        return self.parts[-1].outlet_code(name) if self.parts else -2

    def stats(self) -> tuple[dt.date | None, dt.date | None, dict[str, int]]:
        """First and last article date, and the number of live articles per outlet."""
        dates: list[str] = []
        counts: dict[str, int] = {}
        for s, part in enumerate(self.parts):
            live = self.doc_live[self.doc_starts[s] : self.doc_starts[s + 1]]
            for rowid, date, source in part._query("SELECT rowid, date, source FROM documents"):
                if live[rowid - 1]:
                    if date:
                        dates.append(date)
                    if source is not None:
                        counts[source] = counts.get(source, 0) + 1
        first, last = (min(dates), max(dates)) if dates else (None, None)
        return (
            dt.date.fromisoformat(first) if first else None,
            dt.date.fromisoformat(last) if last else None,
            dict(sorted(counts.items())),
        )


# -- reading -------------------------------------------------------------------------------


@dataclass
class Opened:
    """A format-4 generation's segments and masks, opened and checked."""

    records: Records
    vectors: Rows
    ids: np.ndarray  # the live chunks' ids, increasing
    filters: np.ndarray
    lexical: bm25.Lexical | None


def read(
    path: Path, files: dict[str, str], segments: list[str], dim: int, params: dict[str, Any]
) -> Opened:
    """Open a format-4 generation's segments and masks (the caller checks the counts).

    Raises:
        IndexCorrupt: A file is unreadable or the files disagree.
    """
    live = _load(path, files["live"], mmap=False)
    docs = _load(path, files["docs"], mmap=False)
    filters = _load(path, files["filters"])
    if live.dtype != np.bool_ or live.ndim != 1 or docs.dtype != np.bool_ or docs.ndim != 1:
        raise IndexCorrupt(path, f"{files['live']} or {files['docs']} has the wrong type")
    if filters.dtype != np.int32 or filters.ndim != 2:
        raise IndexCorrupt(path, f"{files['filters']} has the wrong type")
    records, arrays, ids = [], [], []
    for name in segments:
        part = _SegmentRecords(path / name / RECORDS, path)
        vectors = _load(path, f"{name}/{VECTORS}")
        part_ids = _load(path, f"{name}/{IDS}")
        if vectors.shape != (len(part), dim) or vectors.dtype != np.float32:
            raise IndexCorrupt(path, f"{name}/{VECTORS} has {len(vectors)} vectors for {len(part)}")
        if part_ids.shape != (len(part),) or part_ids.dtype != np.int64:
            raise IndexCorrupt(path, f"{name}/{IDS} has the wrong shape or type")
        sample = vectors[
            np.linspace(0, len(vectors) - 1, min(len(vectors), _SAMPLE_ROWS)).astype(int)
        ]
        # Embedders give unit or small count vectors; random bytes read as float32 are mostly huge.
        if not np.isfinite(sample).all() or np.abs(sample).max(initial=0.0) > 1e6:
            raise IndexCorrupt(path, f"{name}/{VECTORS} holds values no embedder produces")
        records.append(part)
        arrays.append(vectors)
        ids.append(part_ids)
    counts = [int(r.documents) for r in records]
    if sum(len(r) for r in records) != len(live) or sum(counts) != len(docs):
        raise IndexCorrupt(path, f"{files['live']} or {files['docs']} does not fit the segments")
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    live_ids = all_ids[live]
    if (np.diff(live_ids) <= 0).any():
        raise IndexCorrupt(path, "the segments' chunk ids are not increasing")
    lexical = bm25.read(path, 3, {"live": files["live"]}, segments, params) if segments else None
    return Opened(Records(records, live, docs), Rows(arrays, live, dim), live_ids, filters, lexical)


def _load(path: Path, name: str, mmap: bool = True) -> np.ndarray:
    try:
        return diskio.load_array(path / name, mmap)
    except (OSError, ValueError) as e:
        raise IndexCorrupt(path, f"{name} is not a readable array") from e
