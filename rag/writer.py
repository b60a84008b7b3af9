"""Writing a format-4 generation (`rag.segments`): the base's segments are kept, the new
chunks go into one new segment (merged with the newest ones when the LSM policy says so),
removed documents are only marked in the masks, and the approximate index is the base's with
the removed ids taken out and the new ones added.

A format-2 or 3 base is converted by the same write: all of it, less what is removed, plus
what is added, goes into the one new segment (its rows are the ids of its approximate index,
which is kept).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import bm25, db, dense, diskio, segments, store
from .manifest import FORMAT_VERSION, Manifest, sizes_and_checksums

if TYPE_CHECKING:
    from .store import Snapshot


@dataclass
class Part:
    """A run of chunks for a write: a segment of the base, the base converted from format 2
    or 3 (``name`` None), or the new chunks (no ``file``)."""

    name: str | None
    file: Path | None  # its SQLite records
    vectors: Any
    ids: np.ndarray
    postings: bm25.Postings
    live: np.ndarray  # per chunk (a copy: the write marks removed ones)
    docs: np.ndarray  # per document, rowid order


def write_generation(
    path: Path,
    gen: int,
    manifest: Manifest,
    base: Snapshot | None,
    drop: set[str],
    docs: list[db.DocRecord],
    chunks: list[db.ChunkRecord],
    vectors: np.ndarray,
) -> Manifest:
    """Write the files of generation ``gen`` and return its manifest (not yet switched to).

    The base's segments are kept; the new chunks go into segment ``seg-gen``, merged with the
    newest ones when due (`rag.bm25.merge_start`); removed documents are only marked in the
    masks. A format-2 or 3 base is converted: all of it is written into that one segment.
    """
    dim = int(manifest.embedder["dim"])
    parts = _parts(path, base)
    last_id = max((int(p.ids[-1]) for p in parts if len(p.ids)), default=-1)
    base_live = [p.live.copy() for p in parts]
    mark_removed(parts, drop)
    names = outlets(parts[-1].file) if parts else []
    names += sorted({d.source.casefold() for d in docs if d.source} - set(names))
    codes = {n: i for i, n in enumerate(names)}
    new_vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
    new_ids = np.arange(last_id + 1, last_id + 1 + len(chunks), dtype=np.int64)
    kept = [p for p in parts if p.live.any() or p.docs.any()]
    if docs or chunks:
        fresh = Part(
            None,
            None,
            new_vectors,
            new_ids,
            bm25.build([c.terms for c in chunks]),
            np.ones(len(chunks), dtype=bool),
            np.ones(len(docs), dtype=bool),
        )
        kept.append(fresh)
    sizes = [(int(p.live.sum()), len(p.live)) for p in kept]
    converting = any(p.name is None and p.file is not None for p in kept)
    start = 0 if converting else bm25.merge_start(sizes, fresh=bool(docs or chunks))
    names_in_use = [str(p.name) for p in kept[:start]]
    lives = [p.live for p in kept[:start]]
    doc_lives = [p.docs for p in kept[:start]]
    new_segment = None
    if start < len(kept):
        new_segment = f"seg-{gen}"
        tail = kept[start:]
        rows = write_segment(path, new_segment, tail, docs, chunks, names, dim)
        names_in_use.append(new_segment)
        lives.append(np.ones(rows, dtype=bool))
        doc_lives.append(np.ones(sum(int(p.docs.sum()) for p in tail), dtype=bool))
    live = np.concatenate(lives) if lives else np.zeros(0, dtype=bool)
    doc_live = np.concatenate(doc_lives) if doc_lives else np.zeros(0, dtype=bool)
    # Filters of the kept rows carry over (outlet codes never change); the new ones follow.
    filters = np.zeros((0, 2), dtype=np.int32)
    if base is not None and parts:
        still = np.concatenate([p.live[was] for p, was in zip(parts, base_live, strict=True)])
        filters = np.asarray(base.filters)[still]
    per_doc = {d.doc_id: db._filter(d.date, d.source, codes) for d in docs}
    new_filters = np.array([per_doc[c.doc_id] for c in chunks], dtype=np.int32).reshape(-1, 2)
    filters = np.concatenate([filters, new_filters]).astype(np.int32)
    files = {kind: f"{kind}-{gen}.npy" for kind in ("filters", "live", "docs")}
    for kind, array in (("filters", filters), ("live", live), ("docs", doc_live)):
        with diskio.writing(path, path / files[kind]):
            np.save(path / files[kind], array, allow_pickle=False)
    ann = dense.ann_spec(int(live.sum()))
    if ann is not None:
        files["ann"] = f"ann-{gen}.faiss"
        killed = [p.ids[was & ~p.live] for p, was in zip(parts, base_live, strict=True)]
        with diskio.writing(path, path / files["ann"]):
            store._write_faiss(
                _ann(
                    path, ann, base, kept[:start], new_segment, live, killed, new_ids, new_vectors
                ),
                path / files["ann"],
            )
    written = [*files.values(), *([new_segment] if new_segment else [])]
    for name in written:
        with diskio.writing(path, path / name):
            diskio.fsync(path / name)
    sizes_, checksums = sizes_and_checksums(path, written)
    # Segments kept from earlier generations are unchanged: their recorded sums carry over.
    carried = set(names_in_use) - set(written)
    sizes_.update({n: v for n, v in manifest.sizes.items() if n.split("/")[0] in carried})
    checksums.update({n: v for n, v in manifest.checksums.items() if n.split("/")[0] in carried})
    return manifest.model_copy(
        update={
            "format_version": FORMAT_VERSION,
            "generation": gen,
            "updated": dt.datetime.now(dt.timezone.utc),
            "ann": ann,
            "documents": int(doc_live.sum()),
            "chunks": int(live.sum()),
            "files": files,
            "sizes": sizes_,
            "checksums": checksums,
            "segments": names_in_use,
            "previous": list(dict.fromkeys([*manifest.files.values(), *manifest.segments]))
            if base is not None
            else [],
        }
    )


def _parts(path: Path, base: Snapshot | None) -> list[Part]:
    """The base's chunks as parts of the next write: its segments (format 4), or all of it as
    one part to convert (formats 2 and 3, whose row = id in their approximate index)."""
    if base is None:
        return []
    if isinstance(base.records, segments.Records):
        lexical = base.bm25
        assert isinstance(base.vectors, segments.Rows)
        assert isinstance(lexical, bm25.Segments) or not base.manifest.segments
        parts = []
        for i, name in enumerate(base.manifest.segments):
            start, end = base.records.starts[i], base.records.starts[i + 1]
            dstart, dend = base.records.doc_starts[i], base.records.doc_starts[i + 1]
            parts.append(
                Part(
                    name,
                    path / name / segments.RECORDS,
                    base.vectors.arrays[i],
                    diskio.load_array(path / name / segments.IDS),
                    lexical.segments[i].postings,  # type: ignore[union-attr]
                    base.records.live[start:end].copy(),
                    base.records.doc_live[dstart:dend].copy(),
                )
            )
        return parts
    rows, documents = len(base), base.manifest.documents
    if not rows and not documents:
        return []
    file = base.records.file
    if isinstance(base.bm25, bm25.Segments):
        old = base.bm25.segments
        whole = len(old) == 1 and old[0].whole
        postings = old[0].postings if whole else bm25.merge([(s.postings, s.live) for s in old])
    else:  # format 2: one bm25s index of final scores; built again from the terms
        postings = bm25.build(db.terms(file))
    return [
        Part(
            None,
            file,
            base.vectors,
            np.arange(rows, dtype=np.int64),
            postings,
            np.ones(rows, dtype=bool),
            np.ones(documents, dtype=bool),
        )
    ]


def _ann(
    path: Path,
    spec: dict[str, Any],
    base: Snapshot | None,
    kept: list[Part],
    new_segment: str | None,
    live: np.ndarray,
    killed: list[np.ndarray],
    new_ids: np.ndarray,
    new_vectors: np.ndarray,
) -> Any:
    """The approximate index of the new generation: the base's with the removed chunks' ids
    taken out and the new ones added (its lists and training kept), or one trained anew when
    the base had none of this spec."""
    import faiss

    if base is not None and base.ann is not None and base.manifest.ann == spec:
        index = faiss.clone_index(base.ann)
        gone = np.concatenate(killed) if killed else np.zeros(0, dtype=np.int64)
        if len(gone):
            gone = np.ascontiguousarray(gone, dtype=np.int64)
            index.remove_ids(faiss.IDSelectorBatch(len(gone), faiss.swig_ptr(gone)))
        if len(new_ids):
            index.add_with_ids(np.ascontiguousarray(new_vectors), new_ids)
        return index
    arrays = [p.vectors for p in kept]
    ids = [np.asarray(p.ids) for p in kept]
    if new_segment is not None:
        arrays.append(diskio.load_array(path / new_segment / segments.VECTORS))
        ids.append(diskio.load_array(path / new_segment / segments.IDS, mmap=False))
    view = segments.Rows(arrays, live, int(new_vectors.shape[1]))
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    with store.sequential(view):
        return dense.build(view, spec, ids=all_ids[live])


# -- segments -------------------------------------------------------------------------------


@contextlib.contextmanager
def _connect(file: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(
        sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    ) as con:
        yield con


def mark_removed(parts: list[Part], doc_ids: set[str]) -> None:
    """Mark the documents ``doc_ids`` and their chunks removed in ``parts``."""
    values = list(doc_ids)
    for part in parts:
        if part.file is None or not values:
            continue
        with _connect(part.file) as con:
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                marks = db._marks(chunk)
                sql = f"SELECT rowid FROM documents WHERE doc_id IN ({marks})"
                rowids = [r for (r,) in con.execute(sql, chunk)]
                if not rowids:
                    continue
                part.docs[np.asarray(rowids, dtype=np.int64) - 1] = False
                sql = f"SELECT row FROM chunks WHERE doc_id IN ({marks})"
                rows = [r for (r,) in con.execute(sql, chunk)]
                part.live[np.asarray(rows, dtype=np.int64)] = False


def outlets(file: Path | None) -> list[str]:
    """The outlet names of a records file, by code."""
    if file is None:
        return []
    with _connect(file) as con:
        return [n for (n,) in con.execute("SELECT name FROM outlets ORDER BY code")]


def write_records(
    file: Path,
    parts: list[Part],
    docs: list[db.DocRecord],
    chunks: list[db.ChunkRecord],
    names: list[str],
) -> None:
    """Write a segment's SQLite file: the live records of ``parts`` in order (rows numbered
    from 0), then ``docs`` and ``chunks``; ``names`` are the outlets, by code."""
    old = [p for p in parts if p.file is not None]
    copied = _whole_file(parts)
    if copied:  # kept whole: the kernel copies the file (copy_file_range), no pass in Python
        shutil.copyfile(old[0].file, file)  # type: ignore[arg-type]
    with contextlib.closing(sqlite3.connect(file)) as con:
        # No rollback journal: a failed write discards the whole segment anyway.
        con.execute("PRAGMA journal_mode=OFF")
        if not copied:
            con.executescript(db.SCHEMA)
        rows = int(old[0].live.size) if copied else 0
        for part in old[1:] if copied else old:
            rows += _copy_live(con, part, rows)
        db._insert(con, docs, chunks, rows)
        con.execute("DELETE FROM outlets")
        con.executemany("INSERT INTO outlets VALUES (?, ?)", enumerate(names))
        con.execute(segments.INDEX_SQL)
        con.commit()


def _whole_file(parts: list[Part]) -> bool:
    """Whether the first of ``parts`` is a file kept whole (then copied as it is)."""
    return parts[0].file is not None and bool(parts[0].docs.all()) if parts else False


def _copy_live(con: sqlite3.Connection, part: Part, first: int) -> int:
    """Append the live documents and chunks of ``part``'s file; returns the chunks copied."""
    con.execute("ATTACH DATABASE ? AS part", (str(part.file),))
    try:
        con.execute("CREATE TEMP TABLE dead (r INTEGER PRIMARY KEY)")
        dead = np.flatnonzero(~part.docs) + 1
        con.executemany("INSERT INTO dead VALUES (?)", ((int(r),) for r in dead))
        docs, cols = db._columns(db.DOC_COLUMNS), db._columns(db.CHUNK_COLUMNS)
        where = "WHERE rowid NOT IN (SELECT r FROM temp.dead)"
        con.execute(
            f"INSERT INTO main.documents ({docs}) SELECT {docs} FROM part.documents {where} "
            "ORDER BY rowid"
        )
        con.execute(
            "CREATE TEMP TABLE gone AS SELECT doc_id FROM part.documents "
            "WHERE rowid IN (SELECT r FROM temp.dead)"
        )
        before = con.execute("SELECT count(*) FROM main.chunks").fetchone()[0]
        con.execute(
            f"INSERT INTO main.chunks (row, {cols}) SELECT ? + row_number() OVER (ORDER BY row)"
            f" - 1, {cols} FROM part.chunks WHERE doc_id NOT IN (SELECT doc_id FROM temp.gone)"
            " ORDER BY row",
            (first,),
        )
        copied = int(con.execute("SELECT count(*) FROM main.chunks").fetchone()[0] - before)
        con.commit()
        con.execute("DROP TABLE temp.dead")
        con.execute("DROP TABLE temp.gone")
    finally:
        con.execute("DETACH DATABASE part")
    if copied != int(part.live.sum()):
        raise ValueError(f"{part.file}: copied {copied} chunks of {int(part.live.sum())}")
    return copied


def write_segment(
    path: Path,
    name: str,
    parts: list[Part],
    docs: list[db.DocRecord],
    chunks: list[db.ChunkRecord],
    names: list[str],
    dim: int,
) -> int:
    """Write segment ``name`` of the index at ``path``: the live chunks of ``parts`` (the last
    may be the new ones, with ``docs`` and ``chunks``), merged. Returns its number of chunks."""
    directory = path / name
    with diskio.writing(path, directory):
        directory.mkdir()
    with diskio.writing(path, directory / segments.RECORDS):
        write_records(directory / segments.RECORDS, parts, docs, chunks, names)
    rows = sum(int(p.live.sum()) for p in parts)
    kept = [p for p in parts if p.file is not None]
    whole = len(kept) == 1 and kept[0] is parts[0] and bool(kept[0].live.all())
    new = [p for p in parts if p.file is None]
    with diskio.writing(path, directory / segments.VECTORS), _sequential(kept):
        diskio.write_npy(
            directory / segments.VECTORS,
            (rows, dim),
            (block for p in kept for block in _live_blocks(p)),
            np.concatenate([np.asarray(p.vectors) for p in new]) if new else np.zeros((0, dim)),
            getattr(kept[0].vectors, "filename", None) and Path(kept[0].vectors.filename)
            if whole and len(parts) <= 2
            else None,
        )
    ids = np.concatenate([p.ids[p.live] for p in parts]) if parts else np.zeros(0, np.int64)
    with diskio.writing(path, directory / segments.IDS):
        np.save(directory / segments.IDS, ids.astype(np.int64), allow_pickle=False)
    if len(parts) == 1 and parts[0].live.all():
        merged = parts[0].postings
    else:
        merged = bm25.merge([(p.postings, p.live) for p in parts])
    with diskio.writing(path, directory):
        bm25.save(merged, directory)
    return rows


def _live_blocks(part: Part) -> Iterator[np.ndarray]:
    """The live vectors of ``part``, a block at a time (slices of the map where all live)."""
    whole = bool(part.live.all())
    rows = np.flatnonzero(part.live)
    for i in range(0, len(rows), dense.BLOCK):
        block = slice(i, min(i + dense.BLOCK, len(rows))) if whole else rows[i : i + dense.BLOCK]
        yield np.asarray(part.vectors[block])


@contextlib.contextmanager
def _sequential(parts: list[Part]) -> Iterator[None]:
    from .store import sequential

    with contextlib.ExitStack() as stack:
        for p in parts:
            stack.enter_context(
                sequential(p.vectors if isinstance(p.vectors, np.ndarray) else None)
            )
        yield
