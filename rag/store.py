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
import mmap
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from . import db, dense
from .errors import IndexCorrupt, IndexLocked, IndexNotFound

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LOCK = ".lock"
GENERATED = ("records", "vectors", "filters", "ann", "bm25")


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
    records: db.Records
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
            with sequential(self.vectors):
                self._flat = dense.flat(self.vectors)
        return self._flat


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
    records = db.Records(path / files["records"], path)
    vectors = _read_npy(path / files["vectors"], path)
    _advise(vectors, mmap.MADV_RANDOM)
    filters = _read_npy(path / files["filters"], path)
    ann = _read_faiss(path / files["ann"], path) if "ann" in files else None
    bm25 = _read_bm25(path / files["bm25"], path) if "bm25" in files else None
    docs, chunks = records.counts()
    if docs != manifest.documents or chunks != manifest.chunks:
        raise IndexCorrupt(path, "document or chunk count differs from the manifest")
    if vectors.shape != (chunks, manifest.embedder["dim"]) or len(filters) != chunks:
        raise IndexCorrupt(path, f"{len(vectors)} vectors for {chunks} chunks")
    if ann is not None and ann.ntotal != chunks:
        raise IndexCorrupt(path, f"{files['ann']} has {ann.ntotal} vectors for {chunks} chunks")
    return Snapshot(path, manifest, records, vectors, filters, ann, bm25)


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
    docs: list[db.DocRecord],
    chunks: list[db.ChunkRecord],
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
    records = path / files["records"]
    written = db.write(records, base.records.file if base is not None else None, drop, docs, chunks)
    keep = written.keep
    rows = len(keep) + len(chunks)
    dim = int(manifest.embedder["dim"])
    all_vectors = np.lib.format.open_memmap(
        path / files["vectors"], mode="w+", dtype=np.float32, shape=(rows, dim)
    )
    with sequential(base.vectors if base is not None else None):
        for start in range(0, len(keep), dense.BLOCK):
            part = keep[start : start + dense.BLOCK]
            all_vectors[start : start + len(part)] = base.vectors[part]  # type: ignore[union-attr]
    all_vectors[len(keep) :] = vectors
    all_vectors.flush()
    np.save(path / files["filters"], written.filters, allow_pickle=False)
    ann = dense.ann_spec(rows)
    if ann is not None:
        files["ann"] = f"ann-{gen}.faiss"
        # Reuse the last generation's training; if rows were only appended, its lists too.
        same = base is not None and base.manifest.ann == ann
        old = base.ann if same and base is not None else None
        start = len(keep) if old is not None and len(keep) == old.ntotal else 0
        _write_faiss(dense.build(all_vectors, ann, old, start), path / files["ann"])
    del all_vectors
    if rows:
        files["bm25"] = f"bm25-{gen}"
        _write_bm25(path / files["bm25"], manifest.bm25, db.terms(records))
    for name in files.values():
        _fsync(path / name)

    new = manifest.model_copy(
        update={
            "format_version": FORMAT_VERSION,
            "generation": gen,
            "updated": dt.datetime.now(dt.timezone.utc),
            "ann": ann,
            "documents": written.documents,
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


@contextlib.contextmanager
def sequential(vectors: np.ndarray | None) -> Iterator[None]:
    """Read the memory-mapped ``vectors`` with readahead while in the block (a bulk copy)."""
    _advise(vectors, mmap.MADV_SEQUENTIAL)
    try:
        yield
    finally:
        _advise(vectors, mmap.MADV_RANDOM)


def _advise(vectors: np.ndarray | None, advice: int) -> None:
    """Tell the kernel how the memory-mapped ``vectors`` will be read.

    Searches read scattered rows (re-scoring candidates): with the default readahead every
    row read pulled in 128 KB around it, so 300 queries at 1M chunks filled 1.4 GB of page
    cache with the vectors and thrashed in 2 GB of memory. `MADV_RANDOM` reads only the pages
    asked for; a bulk copy asks for `MADV_SEQUENTIAL` meanwhile.
    """
    handle = getattr(vectors, "_mmap", None)
    if handle is not None and len(handle):
        handle.madvise(advice)


def _write_bm25(directory: Path, params: dict[str, Any], corpus: list[list[str]]) -> None:
    import bm25s

    shutil.rmtree(directory, ignore_errors=True)
    retriever = bm25s.BM25(k1=params["k1"], b=params["b"], method=params["method"])
    retriever.index(corpus, show_progress=False)
    retriever.save(str(directory))


def _write_faiss(index: Any, file: Path) -> None:
    import faiss

    faiss.write_index(index, str(file))


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
