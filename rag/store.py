"""The index directory on disk: a manifest, SQLite records, vectors, BM25.

Layout (``N`` is the generation, bumped by every write)::

    manifest.json            model, settings, counts, version, and the files of generation N
    records-N.sqlite         tables documents (metadata, cleaned text), chunks (row = vector
                             row: span, text, BM25 terms, hash) and outlets
    vectors-N.npy            fp32 vectors, one row per chunk (memory-mapped when read)
    filters-N.npy            per chunk: article date (ordinal, -1 unknown) and outlet code
    ann-N.faiss              approximate FAISS index, only above a size threshold (rag.dense)
    bm25-N/                  bm25s index (JSON + .npy, memory-mapped; no pickle)

Nothing of a large index has to fit in memory to search it: records are read by row from
SQLite, vectors and BM25 are memory-mapped, and only the approximate index is loaded.

A write puts every file of the new generation beside the old ones, fsyncs them, then
atomically replaces ``manifest.json``. An interrupted write therefore leaves the old
manifest pointing at the old, complete generation; leftovers are removed by the next write.
A reader keeps the generation it opened even if a writer removes it meanwhile (the files
stay readable while open).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from . import dense
from .errors import IndexCorrupt, IndexLocked, IndexNotFound

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LOCK = ".lock"
GENERATED = ("records", "vectors", "filters", "ann", "bm25")

SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, key TEXT NOT NULL, path TEXT, title TEXT, date TEXT,
    published TEXT, source TEXT, reporter TEXT, url TEXT, content_hash TEXT NOT NULL,
    chunks INTEGER NOT NULL, indexed_at TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, tokens INTEGER NOT NULL,
    hash TEXT NOT NULL, terms TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE outlets (code INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
"""
DOC_COLUMNS = tuple(
    "doc_id key path title date published source reporter url content_hash chunks "
    "indexed_at text".split()
)
CHUNK_COLUMNS = ("chunk_id", "doc_id", "start", "end", "tokens", "hash", "terms", "text")


class DocRecord(BaseModel):
    """An indexed article as stored in the ``documents`` table."""

    doc_id: str
    key: str
    path: str | None = None
    title: str | None = None
    date: dt.date | None = None
    published: dt.datetime | None = None
    source: str | None = None
    reporter: str | None = None
    url: str | None = None
    content_hash: str
    chunks: int
    indexed_at: dt.datetime
    text: str


class ChunkRecord(BaseModel):
    """A chunk as stored in the ``chunks`` table; its row is its vector row."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    tokens: int
    hash: str  # SHA-256 of the retrieval text (header + text): the embedding cache key
    terms: str  # BM25 morphemes, space-separated
    text: str


class Manifest(BaseModel):
    """``manifest.json``: what a person (or `rag info`) needs to know about the index."""

    format_version: int = FORMAT_VERSION
    rag_version: str
    created: dt.datetime
    updated: dt.datetime
    generation: int = 0
    embedder: dict[str, Any]
    chunker: dict[str, Any]
    bm25: dict[str, Any]
    ann: dict[str, Any] | None = None
    documents: int = 0
    chunks: int = 0
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}


@dataclass
class Snapshot:
    """One generation of an index, opened for reading."""

    path: Path
    manifest: Manifest
    db: sqlite3.Connection
    vectors: np.ndarray  # memory-mapped fp32, row i = chunk row i
    filters: np.ndarray  # int32 (rows, 2): date ordinal, outlet code
    ann: Any | None
    bm25: Any | None
    _flat: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.manifest.chunks

    def exact_index(self) -> Any:
        """The exact FAISS index over all vectors, built in memory on first use."""
        if self._flat is None:
            self._flat = dense.flat(self.vectors)
        return self._flat

    def chunks(self, rows: Sequence[int]) -> list[ChunkRecord]:
        """The chunks at ``rows``, in that order."""
        found = {}
        for start in range(0, len(rows), 500):
            part = [int(r) for r in rows[start : start + 500]]
            marks = ",".join("?" * len(part))
            sql = f"SELECT row, {_columns(CHUNK_COLUMNS)} FROM chunks WHERE row IN ({marks})"
            for row, *values in self._query(sql, part):
                found[row] = ChunkRecord(**dict(zip(CHUNK_COLUMNS, values, strict=True)))
        return [found[int(r)] for r in rows]

    def all_chunks(self) -> Iterator[ChunkRecord]:
        """Every chunk, in row order."""
        sql = f"SELECT {_columns(CHUNK_COLUMNS)} FROM chunks ORDER BY row"
        for values in self._query(sql):
            yield ChunkRecord(**dict(zip(CHUNK_COLUMNS, values, strict=True)))

    def chunk_hashes(self) -> dict[str, int]:
        """Row of every chunk by the hash of its retrieval text (the embedding cache)."""
        return dict(self._query("SELECT hash, row FROM chunks"))

    def docs(self, ids: Iterable[str] | None = None, text: bool = True) -> dict[str, DocRecord]:
        """Documents by id, in the order they were added (all of them when ``ids`` is None)."""
        columns = _columns(DOC_COLUMNS) if text else _columns(DOC_COLUMNS[:-1]) + ", ''"
        if ids is None:
            rows = list(self._query(f"SELECT {columns} FROM documents ORDER BY rowid"))
        else:
            wanted = list(dict.fromkeys(ids))
            rows = []
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                rows += self._query(
                    f"SELECT {columns} FROM documents WHERE doc_id IN ({marks})", part
                )
        docs = [DocRecord(**dict(zip(DOC_COLUMNS, r, strict=True))) for r in rows]
        return {d.doc_id: d for d in docs}

    def doc_ids_under(self, path: str) -> list[str]:
        """Ids of the documents read from file ``path`` or from files under folder ``path``."""
        prefix = path.rstrip("/") + "/"
        sql = "SELECT doc_id FROM documents WHERE path = ? OR substr(path, 1, ?) = ? ORDER BY rowid"
        return [r[0] for r in self._query(sql, [path, len(prefix), prefix])]

    def outlet_code(self, name: str) -> int:
        """The code of outlet ``name`` (casefolded) in ``filters``, -2 if no chunk has it."""
        found = list(self._query("SELECT code FROM outlets WHERE name = ?", [name.casefold()]))
        return int(found[0][0]) if found else -2

    def stats(self) -> tuple[dt.date | None, dt.date | None, dict[str, int]]:
        """First and last article date, and the number of articles per outlet."""
        (first, last), *_ = self._query("SELECT min(date), max(date) FROM documents")
        counts = self._query(
            "SELECT source, count(*) FROM documents WHERE source IS NOT NULL "
            "GROUP BY source ORDER BY source"
        )
        as_date = dt.date.fromisoformat
        return (as_date(first) if first else None, as_date(last) if last else None, dict(counts))

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise IndexCorrupt(self.path, f"{self.manifest.files['records']}: {e}") from e


def read(path: Path) -> Snapshot:
    """Open the current generation, checking it against the manifest.

    Raises:
        IndexNotFound: No manifest in ``path``.
        IndexCorrupt: The manifest or a file it names is unreadable or inconsistent.
    """
    manifest = read_manifest(path)
    files = manifest.files
    for name in files.values():
        if not (path / name).exists():
            raise IndexCorrupt(path, f"{name} is missing")
    for name, size in manifest.sizes.items():
        actual = _size(path / name)
        if actual != size:
            raise IndexCorrupt(path, f"{name} is {actual} bytes, manifest says {size}")
    db = _connect(path / files["records"], path)
    vectors = _read_npy(path / files["vectors"], path)
    filters = _read_npy(path / files["filters"], path)
    ann = _read_faiss(path / files["ann"], path) if "ann" in files else None
    bm25 = _read_bm25(path / files["bm25"], path) if "bm25" in files else None
    snapshot = Snapshot(path, manifest, db, vectors, filters, ann, bm25)
    (docs, chunks), *_ = snapshot._query(
        "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
    )
    if docs != manifest.documents or chunks != manifest.chunks:
        raise IndexCorrupt(path, "document or chunk count differs from the manifest")
    if vectors.shape != (chunks, manifest.embedder["dim"]) or len(filters) != chunks:
        raise IndexCorrupt(path, f"{len(vectors)} vectors for {chunks} chunks")
    if ann is not None and ann.ntotal != chunks:
        raise IndexCorrupt(path, f"{files['ann']} has {ann.ntotal} vectors for {chunks} chunks")
    return snapshot


def read_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json`` only (cheap: no vectors are loaded)."""
    file = path / MANIFEST
    if not file.is_file():
        raise IndexNotFound(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexCorrupt(path, f"{MANIFEST} is not valid JSON ({_first_line(e)})") from e
    version = raw.get("format_version", 0) if isinstance(raw, dict) else 0
    if version > FORMAT_VERSION:
        raise IndexCorrupt(
            path,
            f"format {version} is newer than this version of rag reads ({FORMAT_VERSION}); "
            "upgrade rag",
        )
    if version < FORMAT_VERSION:
        raise IndexCorrupt(
            path, f"format {version} was written by an older rag; index the articles again"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        raise IndexCorrupt(path, f"{MANIFEST} is invalid: {_first_line(e)}") from e


def write(
    path: Path,
    manifest: Manifest,
    base: Snapshot | None,
    drop: set[str],
    docs: list[DocRecord],
    chunks: list[ChunkRecord],
    vectors: np.ndarray,
) -> Manifest:
    """Write a new generation = ``base`` minus documents ``drop`` plus ``docs``, and switch
    the manifest to it atomically. ``chunks`` and ``vectors`` are the new documents' chunks,
    row for row.

    The caller holds `lock(path)`. Returns the manifest as written.
    """
    path.mkdir(parents=True, exist_ok=True)
    gen = manifest.generation + 1
    files = {
        "records": f"records-{gen}.sqlite",
        "vectors": f"vectors-{gen}.npy",
        "filters": f"filters-{gen}.npy",
    }
    current = set(base.manifest.files.values()) if base is not None else set()
    _remove_other_generations(path, keep=current)
    keep = _write_records(path / files["records"], base, drop, docs, chunks)
    rows = len(keep) + len(chunks)
    dim = int(manifest.embedder["dim"])
    all_vectors = np.lib.format.open_memmap(
        path / files["vectors"], mode="w+", dtype=np.float32, shape=(rows, dim)
    )
    for start in range(0, len(keep), dense.BLOCK):
        part = keep[start : start + dense.BLOCK]
        all_vectors[start : start + len(part)] = base.vectors[part]  # type: ignore[union-attr]
    all_vectors[len(keep) :] = vectors
    all_vectors.flush()
    db = sqlite3.connect(path / files["records"])
    try:
        np.save(path / files["filters"], _filters(db), allow_pickle=False)
        ann = dense.ann_spec(rows)
        if ann is not None:
            files["ann"] = f"ann-{gen}.faiss"
            # Reuse the last generation's training; if rows were only appended, its lists too.
            same = base is not None and base.manifest.ann == ann
            old = base.ann if same and base is not None else None
            start = len(keep) if old is not None and len(keep) == old.ntotal else 0
            graph = dense.build(all_vectors, ann, old, start)
            _write_faiss(graph, path / files["ann"])
        del all_vectors
        if rows:
            files["bm25"] = f"bm25-{gen}"
            terms = (r[0].split() for r in db.execute("SELECT terms FROM chunks ORDER BY row"))
            _write_bm25(path / files["bm25"], manifest.bm25, list(terms))
    finally:
        db.close()
    for name in files.values():
        _fsync(path / name)

    new = manifest.model_copy(
        update={
            "format_version": FORMAT_VERSION,
            "generation": gen,
            "updated": dt.datetime.now(dt.timezone.utc),
            "ann": ann,
            "documents": _count(path / files["records"], "documents"),
            "chunks": rows,
            "files": files,
            "sizes": _sizes(path, files.values()),
        }
    )
    tmp = path / f"{MANIFEST}.tmp"
    tmp.write_text(new.model_dump_json(indent=2), encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path / MANIFEST)
    _fsync(path)
    _remove_other_generations(path, set(files.values()))
    return new


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold the index's write lock; a second writer gets `IndexLocked` at once."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise IndexLocked(path) from e
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def disk_size(path: Path, manifest: Manifest) -> int:
    """Bytes used by the current generation's files."""
    return _size(path / MANIFEST) + sum(manifest.sizes.values())


def _write_records(
    file: Path,
    base: Snapshot | None,
    drop: set[str],
    docs: list[DocRecord],
    chunks: list[ChunkRecord],
) -> np.ndarray:
    """Write the new generation's SQLite file; returns the base rows it keeps, in order.

    The kept records are copied from the base generation inside SQLite (no Python loop over
    them); their chunk rows are renumbered from 0 and the new chunks follow.
    """
    file.unlink(missing_ok=True)
    db = sqlite3.connect(file)
    try:
        db.executescript(SCHEMA)
        keep = np.zeros(0, dtype=np.int64)
        if base is not None:
            _copy_kept(db, base.path / base.manifest.files["records"], drop)
            rows = db.execute("SELECT base_row FROM kept ORDER BY row").fetchall()
            keep = np.array(rows, dtype=np.int64).reshape(-1)
        docs_sql = f"INSERT INTO documents ({_columns(DOC_COLUMNS)}) VALUES ({_marks(DOC_COLUMNS)})"
        db.executemany(docs_sql, (_values(d, DOC_COLUMNS) for d in docs))
        chunks_sql = (
            f"INSERT INTO chunks (row, {_columns(CHUNK_COLUMNS)}) "
            f"VALUES (?, {_marks(CHUNK_COLUMNS)})"
        )
        db.executemany(
            chunks_sql,
            ((len(keep) + i, *_values(c, CHUNK_COLUMNS)) for i, c in enumerate(chunks)),
        )
        sql = "SELECT DISTINCT source FROM documents WHERE source IS NOT NULL"
        outlets = sorted({s.casefold() for (s,) in db.execute(sql)})
        db.executemany("INSERT INTO outlets VALUES (?, ?)", enumerate(outlets))
        db.commit()
    finally:
        db.close()
    return keep


def _copy_kept(db: sqlite3.Connection, base: Path, drop: set[str]) -> None:
    """Copy the documents and chunks of ``base`` not in ``drop``; leaves a temp table
    ``kept(row, base_row)`` mapping each copied chunk to its row in ``base``."""
    db.execute("ATTACH DATABASE ? AS base", (str(base),))
    db.execute("CREATE TEMP TABLE dropped (doc_id TEXT PRIMARY KEY)")
    db.executemany("INSERT INTO dropped VALUES (?)", [(d,) for d in drop])
    where = "WHERE doc_id NOT IN (SELECT doc_id FROM dropped)"
    docs, chunks = _columns(DOC_COLUMNS), _columns(CHUNK_COLUMNS)
    db.execute(
        f"INSERT INTO documents ({docs}) SELECT {docs} FROM base.documents {where} ORDER BY rowid"
    )
    db.execute(
        "CREATE TEMP TABLE kept AS SELECT row_number() OVER (ORDER BY row) - 1 AS row, "
        f"row AS base_row FROM base.chunks {where}"
    )
    db.execute(
        f"INSERT INTO chunks (row, {chunks}) SELECT kept.row, {_columns(CHUNK_COLUMNS, 'c.')} "
        "FROM kept JOIN base.chunks AS c ON c.row = kept.base_row ORDER BY kept.row"
    )
    db.commit()
    db.execute("DETACH DATABASE base")


def _filters(db: sqlite3.Connection) -> np.ndarray:
    """Date ordinal and outlet code of every chunk's article, in row order."""
    codes = dict(db.execute("SELECT name, code FROM outlets"))
    per_doc = {
        doc_id: (
            dt.date.fromisoformat(date).toordinal() if date else -1,
            codes[source.casefold()] if source else -1,
        )
        for doc_id, date, source in db.execute("SELECT doc_id, date, source FROM documents")
    }
    rows = [per_doc[d] for (d,) in db.execute("SELECT doc_id FROM chunks ORDER BY row")]
    return np.array(rows, dtype=np.int32).reshape(-1, 2)


def _write_bm25(directory: Path, params: dict[str, Any], corpus: list[list[str]]) -> None:
    import bm25s

    shutil.rmtree(directory, ignore_errors=True)
    retriever = bm25s.BM25(k1=params["k1"], b=params["b"], method=params["method"])
    retriever.index(corpus, show_progress=False)
    retriever.save(str(directory))


def _write_faiss(index: Any, file: Path) -> None:
    import faiss

    faiss.write_index(index, str(file))


def _connect(file: Path, index_path: Path) -> sqlite3.Connection:
    # A generation's files never change once written: immutable skips SQLite's locking.
    uri = f"{file.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as e:
        raise IndexCorrupt(index_path, f"{file.name} is not a readable SQLite file") from e


def _count(file: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(file)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _read_npy(file: Path, index_path: Path) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise IndexCorrupt(index_path, f"{file.name} is not a readable array") from e


def _read_faiss(file: Path, index_path: Path) -> Any:
    import faiss

    try:
        return faiss.read_index(str(file))
    except RuntimeError as e:
        raise IndexCorrupt(index_path, f"{file.name} is not a readable FAISS index") from e


def _read_bm25(directory: Path, index_path: Path) -> Any:
    import bm25s

    try:
        return bm25s.BM25.load(str(directory), load_corpus=False, mmap=True)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise IndexCorrupt(index_path, f"{directory.name} is not a readable BM25 index") from e


def _columns(names: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{n}"' for n in names)


def _marks(names: tuple[str, ...]) -> str:
    return ", ".join("?" * len(names))


def _values(record: BaseModel, names: tuple[str, ...]) -> tuple[Any, ...]:
    data = record.model_dump(mode="json", include=set(names))
    return tuple(data[n] for n in names)


def _sizes(path: Path, names: Iterable[str]) -> dict[str, int]:
    """Size of every file of a generation; a directory's files are listed one by one."""
    sizes = {}
    for name in names:
        p = path / name
        for f in sorted(p.iterdir()) if p.is_dir() else [p]:
            sizes[f.relative_to(path).as_posix()] = _size(f)
    return sizes


def _remove_other_generations(path: Path, keep: set[str]) -> None:
    for p in path.iterdir():
        if p.name.split("-")[0] in GENERATED and p.name not in keep:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _fsync(p: Path) -> None:
    for f in sorted(p.iterdir()) if p.is_dir() else []:
        _fsync(f)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return -1


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
