"""The index directory on disk: a manifest, documents, chunks, FAISS vectors and BM25.

Layout (``N`` is the generation, bumped by every write)::

    manifest.json            model, settings, counts, version, and the files of generation N
    documents-N.jsonl        one article a line: metadata and cleaned text
    chunks-N.jsonl           one chunk a line, in vector order: span, text, BM25 terms
    vectors-N.faiss          dense vectors (inner product on unit vectors)
    bm25-N/                  bm25s index (JSON + .npy, no pickle)

A write puts every file of the new generation beside the old ones, fsyncs them, then
atomically replaces ``manifest.json``. An interrupted write therefore leaves the old
manifest pointing at the old, complete generation; leftovers are removed by the next write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from .errors import IndexCorrupt, IndexLocked, IndexNotFound

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"


class DocRecord(BaseModel):
    """An indexed article as stored in ``documents-N.jsonl``."""

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
    """A chunk as stored in ``chunks-N.jsonl``; its line number is its vector row."""

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
    documents: int = 0
    chunks: int = 0
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}


@dataclass
class Snapshot:
    """One generation of an index, loaded in memory."""

    manifest: Manifest
    docs: dict[str, DocRecord]
    chunks: list[ChunkRecord]
    faiss_index: Any
    bm25: Any | None


def read(path: Path) -> Snapshot:
    """Load the current generation, checking it against the manifest.

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
    try:
        docs = {d.doc_id: d for d in _read_jsonl(path / files["documents"], DocRecord)}
        chunks = list(_read_jsonl(path / files["chunks"], ChunkRecord))
    except (ValueError, ValidationError) as e:
        raise IndexCorrupt(path, f"unreadable records: {_first_line(e)}") from e
    faiss_index = _read_faiss(path / files["vectors"], path)
    bm25 = _read_bm25(path / files["bm25"], path) if "bm25" in files else None
    if len(docs) != manifest.documents or len(chunks) != manifest.chunks:
        raise IndexCorrupt(path, "document or chunk count differs from the manifest")
    if faiss_index.ntotal != len(chunks):
        raise IndexCorrupt(path, f"{faiss_index.ntotal} vectors for {len(chunks)} chunks")
    return Snapshot(manifest=manifest, docs=docs, chunks=chunks, faiss_index=faiss_index, bm25=bm25)


def read_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json`` only (cheap: no vectors are loaded)."""
    file = path / MANIFEST
    if not file.is_file():
        raise IndexNotFound(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexCorrupt(path, f"{MANIFEST} is not valid JSON ({_first_line(e)})") from e
    if isinstance(raw, dict) and raw.get("format_version", 0) > FORMAT_VERSION:
        raise IndexCorrupt(
            path,
            f"format {raw['format_version']} is newer than this version of rag reads "
            f"({FORMAT_VERSION}); upgrade rag",
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        raise IndexCorrupt(path, f"{MANIFEST} is invalid: {_first_line(e)}") from e


def write(
    path: Path,
    manifest: Manifest,
    docs: list[DocRecord],
    chunks: list[ChunkRecord],
    vectors: np.ndarray,
) -> Manifest:
    """Write a new generation and switch the manifest to it atomically.

    The caller holds `lock(path)`. Returns the manifest as written.
    """
    import bm25s
    import faiss

    path.mkdir(parents=True, exist_ok=True)
    gen = manifest.generation + 1
    files = {
        "documents": f"documents-{gen}.jsonl",
        "chunks": f"chunks-{gen}.jsonl",
        "vectors": f"vectors-{gen}.faiss",
    }
    _write_jsonl(path / files["documents"], docs)
    _write_jsonl(path / files["chunks"], chunks)
    index = faiss.IndexFlatIP(int(manifest.embedder["dim"]))
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(path / files["vectors"]))
    _fsync(path / files["vectors"])
    if chunks:
        files["bm25"] = f"bm25-{gen}"
        bm25_dir = path / files["bm25"]
        shutil.rmtree(bm25_dir, ignore_errors=True)
        params = manifest.bm25
        retriever = bm25s.BM25(k1=params["k1"], b=params["b"], method=params["method"])
        retriever.index([c.terms.split() for c in chunks], show_progress=False)
        retriever.save(str(bm25_dir))
        for f in bm25_dir.iterdir():
            _fsync(f)
        _fsync(bm25_dir)

    new = manifest.model_copy(
        update={
            "generation": gen,
            "updated": dt.datetime.now(dt.timezone.utc),
            "documents": len(docs),
            "chunks": len(chunks),
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


def vectors_of(snapshot: Snapshot) -> np.ndarray:
    """All stored vectors, row i for chunk i."""
    n = snapshot.faiss_index.ntotal
    if n == 0:
        return np.zeros((0, snapshot.faiss_index.d), dtype=np.float32)
    return snapshot.faiss_index.reconstruct_n(0, n)


def disk_size(path: Path, manifest: Manifest) -> int:
    """Bytes used by the current generation's files."""
    return _size(path / MANIFEST) + sum(manifest.sizes.values())


def _sizes(path: Path, names: Iterable[str]) -> dict[str, int]:
    """Size of every file of a generation; a directory's files are listed one by one."""
    sizes = {}
    for name in names:
        p = path / name
        for f in sorted(p.iterdir()) if p.is_dir() else [p]:
            sizes[f.relative_to(path).as_posix()] = _size(f)
    return sizes


def _read_jsonl(file: Path, model: type[BaseModel]) -> Iterator[Any]:
    with open(file, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield model.model_validate_json(line)


def _write_jsonl(file: Path, records: list[Any]) -> None:
    with open(file, "w", encoding="utf-8") as handle:
        for r in records:
            # model_dump_json keeps Hangul as is (no \\u escapes), so the file stays readable.
            handle.write(r.model_dump_json())
            handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_faiss(file: Path, index_path: Path) -> Any:
    import faiss

    try:
        return faiss.read_index(str(file))
    except RuntimeError as e:
        raise IndexCorrupt(index_path, f"{file.name} is not a readable FAISS index") from e


def _read_bm25(directory: Path, index_path: Path) -> Any:
    import bm25s

    try:
        return bm25s.BM25.load(str(directory), load_corpus=False)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise IndexCorrupt(index_path, f"{directory.name} is not a readable BM25 index") from e


def _remove_other_generations(path: Path, keep: set[str]) -> None:
    for p in path.iterdir():
        generated = p.name.split("-")[0] in ("documents", "chunks", "vectors", "bm25")
        if generated and p.name not in keep:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _fsync(p: Path) -> None:
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
