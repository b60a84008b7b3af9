"""The index directory on disk: a manifest, segments of records, vectors and BM25, masks.

Layout (``N`` is the generation, bumped by every write; format 4)::

    manifest.json            model, settings, counts, version, the files and segments of
                             generation N with their sizes and checksums, and the names of
                             generation N-1's
    seg-G/                   a segment, written by generation G <= N and kept while later ones
                             add theirs: records.sqlite (documents, chunks, outlets), vectors.npy
                             (fp32, memory-mapped), ids.npy and BM25 postings (`rag.segments`)
    live-N.npy, docs-N.npy   which chunks and documents of the segments are still indexed
    filters-N.npy            per live chunk: article date (ordinal, -1 unknown) and outlet code
    ann-N.faiss              approximate FAISS index by chunk id, only above a size threshold
    pending.json             only during a write: the files of the generation being written

Formats 2 and 3 had ``records-N.sqlite`` and ``vectors-N.npy`` in every generation (and BM25 in
one bm25s index, or in ``bm25-G/`` segments); they are read, and converted by the next write
(`rag.writer`).

Nothing of a large index has to fit in memory to search it: records are read by row from
SQLite, vectors and BM25 are memory-mapped, and only the approximate index is loaded.

A write lists the new generation's files in ``pending.json``, puts them beside the old ones,
fsyncs them, then atomically replaces ``manifest.json``. An interrupted write therefore leaves
the old manifest pointing at the old, complete generation; the next write removes the files
``pending.json`` lists. Only files a manifest or ``pending.json`` names are ever removed, so
nothing else in the directory is touched. The old generation's files are removed right after
the switch, except segments the new generation still uses (the manifest lists them as
``previous`` until the next write, in case the writer dies first); a reader that read the old
manifest but had not opened its files yet finds them gone and re-reads the manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import bm25, db, dense, diskio, segments, writer
from .errors import (
    IndexCorrupt,
    IndexExists,
    IndexLocked,
    IndexNotFound,
    IndexWriteError,
    RagError,
    first_and_more,
)
from .manifest import (
    MANIFEST,
    PENDING,
    SUFFIXES,
    Manifest,
    read_manifest,
    read_pending,
    resized,
    verify,
    wrote_manifest,
    wrote_pending,
)

LOCK = ".lock"
# Readers hold a shared lock on this file while they open a generation's files, and a writer
# holds it exclusively while it removes files, so an open never finds its files half gone.
READERS = ".readers"


# Files of a directory that holds no index yet and may still be made one: the locks (empty
# files), what an interrupted first write left (rag's own pending list and manifest), and the
# .gitignore that keeps a checkout's empty index/ in git (never removed). A user's file of
# such a name makes the directory another's: a write removes these (`write`, `undo_create`).
def _empty_file(file: Path) -> bool:
    return file.is_file() and file.stat().st_size == 0


_SCAFFOLD: dict[str, Callable[[Path], bool]] = {
    LOCK: _empty_file,
    READERS: _empty_file,
    PENDING: lambda file: wrote_pending(file.parent),
    f"{MANIFEST}.tmp": wrote_manifest,
    ".gitignore": lambda file: True,
}
# Opening retries this often when a writer switched generations meanwhile.
_OPEN_ATTEMPTS = 3
# Rows of the vectors checked on open for values no embedder produces (garbage of the right size).
_SAMPLE_ROWS = 32


@dataclass
class Snapshot:
    """One generation of an index, opened for reading."""

    path: Path
    manifest: Manifest
    records: db.Records | segments.Records
    vectors: np.ndarray | segments.Rows  # memory-mapped fp32, row i = chunk row i
    filters: np.ndarray  # int32 (rows, 2): date ordinal, outlet code
    ann: Any | None
    bm25: bm25.Lexical | None
    # Format 4: each row's id in ``ann`` (increasing); before, ids were rows.
    ids: np.ndarray | None = None
    _flat: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.manifest.chunks

    def check_unchanged(self) -> None:
        """Raise `IndexCorrupt` if a file of this generation changed size since it was
        opened (`rag.manifest.resized`): a few stat calls, made before each search."""
        problem = resized(self.path, self.manifest)
        if problem:
            raise IndexCorrupt(self.path, f"{problem}; it changed while the index was open")

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
        RagError: Writers switched generations on every attempt to open (retry).
    """
    for _ in range(_OPEN_ATTEMPTS):
        with _readers(path, exclusive=False):
            manifest = read_manifest(path)
            try:
                return _open(path, manifest)
            except IndexCorrupt:
                if _generation(path) == manifest.generation:
                    raise
                # A writer replaced the generation while it was being opened (an index
                # written by an older rag has no readers' lock): open the new one.
    raise RagError(f"the index at {path} changed on every attempt to open it; retry")


def _open(path: Path, manifest: Manifest) -> Snapshot:
    problems = verify(path, manifest, full=False)
    if problems:
        raise IndexCorrupt(path, problems[0])
    files = manifest.files
    if manifest.format_version >= 4:
        return _open_segments(path, manifest)
    records = db.Records(path / files["records"], path)
    vectors = _read_npy(path / files["vectors"], path)
    _advise(vectors, mmap.MADV_RANDOM)
    filters = _read_npy(path / files["filters"], path)
    ann = _read_faiss(path / files["ann"], path) if "ann" in files else None
    lexical = bm25.read(path, manifest.format_version, files, manifest.segments, manifest.bm25)
    docs, chunks = records.counts()
    if docs != manifest.documents or chunks != manifest.chunks:
        raise IndexCorrupt(path, "document or chunk count differs from the manifest")
    if vectors.shape != (chunks, manifest.embedder["dim"]) or len(filters) != chunks:
        raise IndexCorrupt(path, f"{len(vectors)} vectors for {chunks} chunks")
    if vectors.dtype != np.float32 or filters.dtype != np.int32 or filters.ndim != 2:
        raise IndexCorrupt(path, f"{files['vectors']} or {files['filters']} has the wrong type")
    if ann is not None and ann.ntotal != chunks:
        raise IndexCorrupt(path, f"{files['ann']} has {ann.ntotal} vectors for {chunks} chunks")
    if (lexical.num_docs if lexical is not None else 0) != chunks:
        raise IndexCorrupt(path, f"the BM25 index does not cover the {chunks} chunks")
    sample = vectors[np.linspace(0, len(vectors) - 1, min(len(vectors), _SAMPLE_ROWS)).astype(int)]
    # Embedders give unit or small count vectors; random bytes read as float32 are mostly huge.
    if not np.isfinite(sample).all() or np.abs(sample).max(initial=0.0) > 1e6:
        raise IndexCorrupt(path, f"{files['vectors']} holds values no embedder produces")
    return Snapshot(path, manifest, records, vectors, filters, ann, lexical)


def _open_segments(path: Path, manifest: Manifest) -> Snapshot:
    files, dim = manifest.files, int(manifest.embedder["dim"])
    opened = segments.read(path, files, manifest.segments, dim, manifest.bm25)
    ann = _read_faiss(path / files["ann"], path) if "ann" in files else None
    _advise(opened.vectors, mmap.MADV_RANDOM)
    docs, chunks = opened.records.counts()
    if docs != manifest.documents or chunks != manifest.chunks:
        raise IndexCorrupt(path, "document or chunk count differs from the manifest")
    if len(opened.filters) != chunks:
        raise IndexCorrupt(path, f"{files['filters']} has {len(opened.filters)} rows for {chunks}")
    if ann is not None and ann.ntotal != chunks:
        raise IndexCorrupt(path, f"{files['ann']} has {ann.ntotal} vectors for {chunks} chunks")
    if (opened.lexical.num_docs if opened.lexical is not None else 0) != chunks:
        raise IndexCorrupt(path, f"the BM25 index does not cover the {chunks} chunks")
    # Ids 0..n-1 are the rows themselves (nothing removed yet): no mapping on every search.
    ids = opened.ids if len(opened.ids) and opened.ids[-1] != len(opened.ids) - 1 else None
    return Snapshot(
        path, manifest, opened.records, opened.vectors, opened.filters, ann, opened.lexical, ids
    )


def check(path: Path, manifest: Manifest) -> list[str] | None:
    """Verify every file of the generation ``manifest`` describes against its recorded size
    and checksum.

    Returns:
        The problems found (empty when the index is intact), or None when ``manifest`` is no
        longer the index's: a writer switched generations, and may have removed its files.
    """
    # Under the readers' lock, as a reader opens: a writer removing the generation being
    # checked made files "missing" (5 false problems in 100 writes).
    with _readers(path, exclusive=False):
        if read_manifest(path) != manifest:
            return None
        return verify(path, manifest, full=True)


def _generation(path: Path) -> int | None:
    try:
        return read_manifest(path).generation
    except RagError:
        return None


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

    Raises:
        IndexWriteError: No space left (checked before writing, and on every write), or the
            directory cannot be written; the new generation's files are removed again.
    """
    if base is None:
        if (path / MANIFEST).exists():  # another process made it since the caller looked
            raise IndexExists(path)
        check_new(path)
    # What an interrupted write left, and generation N-1 if the write of N was killed before
    # removing it, go now, before the free space is measured.
    current = [*manifest.files.values(), *manifest.segments] if base is not None else []
    old = [*manifest.previous, *read_pending(path)] if base is not None else read_pending(path)
    with _readers(path, exclusive=True):
        diskio.remove(path, [n for n in old if n not in current])
    (path / f"{MANIFEST}.tmp").unlink(missing_ok=True)
    gen = manifest.generation + 1
    while any((path / f"{kind}-{gen}{suffix}").exists() for kind, suffix in SUFFIXES.items()):
        gen += 1  # a name taken by a file this index did not write: leave it alone
    pending = [f"{kind}-{gen}{suffix}" for kind, suffix in SUFFIXES.items()]
    dim = int(manifest.embedder["dim"])
    diskio.check_space(
        path, gen, diskio.estimate(base.manifest if base else None, docs, chunks, dim)
    )
    switched = False
    try:
        with diskio.writing(path, path / PENDING):
            diskio.write_json(path / PENDING, {"generation": gen, "files": pending})
        new = writer.write_generation(path, gen, manifest, base, drop, docs, chunks, vectors)
        tmp = path / f"{MANIFEST}.tmp"
        with diskio.writing(path, tmp):
            diskio.write_json(tmp, new.model_dump(mode="json"))
        tmp.replace(path / MANIFEST)
        switched = True
        diskio.fsync(path)
    except BaseException:
        # Ctrl-C lands between two bytecodes, and so may between the replace and the line
        # after it: the manifest on disk says whether the new generation is the index now
        # (removing its files then left a manifest naming missing files, seen once in 6
        # killed writes of tests/test_faults.py).
        if not switched and not _names_generation(path, gen):
            diskio.remove(path, pending)
            (path / f"{MANIFEST}.tmp").unlink(missing_ok=True)
            (path / PENDING).unlink(missing_ok=True)
        raise
    # Readers that opened generation N keep reading it (open files and maps outlive the
    # names); one still opening it holds the readers' lock until its files are open.
    with _readers(path, exclusive=True):
        in_use = {*new.files.values(), *new.segments}
        diskio.remove(path, [n for n in new.previous if n not in in_use])
    (path / PENDING).unlink(missing_ok=True)
    return new


def _names_generation(path: Path, gen: int) -> bool:
    """Whether the manifest at ``path`` names generation ``gen`` (the writer holds the lock,
    so only it can have switched to it)."""
    try:
        return read_manifest(path).generation == gen
    except RagError:
        return False


def check_new(path: Path) -> None:
    """Refuse to make an index in a directory that holds other things.

    Raises:
        RagError: ``path`` is a file, or a directory with entries that are not an index's.
    """
    if path.exists() and not path.is_dir():
        raise RagError(f"{path} is a file, not an index directory")
    if not path.is_dir() or (path / MANIFEST).exists():
        return
    entries = list(path.iterdir())
    ours = {p.name for p in entries if p.name in _SCAFFOLD and _SCAFFOLD[p.name](p)}
    ours |= set(read_pending(path)) if PENDING in ours else set()
    others = sorted(p.name for p in entries if p.name not in ours)
    if others:
        raise RagError(
            f"{path} is not empty and holds no index (it has {first_and_more(others)}); "
            "give --index a new or empty directory"
        )


def undo_create(path: Path, generation: int, directory: bool) -> bool:
    """Remove the index this process created at ``path`` and put nothing in: exactly the
    files its manifest names, and the directory too if ``directory`` and nothing else is
    left in it. Only under the write lock and only while the index is still at
    ``generation``: another process may have opened the new index and written to it (or be
    writing now), and then it is that process's index and stays.

    Returns:
        Whether the index was removed.
    """
    if not (path / MANIFEST).is_file():  # gone already: don't make the directory again
        return False
    try:
        with lock(path):
            manifest = read_manifest(path)
            if manifest.generation != generation:
                return False
            names = [*manifest.files.values(), *manifest.segments, *manifest.previous]
            names += read_pending(path)
            # The manifest goes before the files it names, which pending.json lists until
            # they are gone: an undo cut short by Ctrl-C or a kill leaves what the next
            # write of a new index removes (`check_new`, `write`), not a manifest naming
            # missing files.
            with diskio.writing(path, path / PENDING):
                diskio.write_json(path / PENDING, {"generation": generation, "files": names})
            (path / MANIFEST).unlink()
            diskio.remove(path, names)
            for name in (PENDING, READERS, LOCK):
                (path / name).unlink(missing_ok=True)
    except RagError:  # locked by another writer, gone, or unreadable: not ours to remove
        return False
    if directory:
        with contextlib.suppress(OSError):
            path.rmdir()
    return True


@contextlib.contextmanager
def _readers(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold the readers' lock (see `READERS`). The writer creates its file; a reader only opens
    it, so reading never writes to a directory, and an index no writer has touched since
    (read-only, or written by an older rag) is read without it."""
    try:
        handle = open(path / READERS, "a" if exclusive else "rb")  # noqa: SIM115
    except OSError:
        if exclusive:
            raise
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def lock(path: Path, create: bool = False) -> Iterator[None]:
    """Hold the index's write lock; a second writer gets `IndexLocked` at once. Only a
    writer that ``create``s the index makes its directory: a write to an index whose
    directory was removed meanwhile made it again, empty but for the lock file.

    Raises:
        IndexLocked: Another process, or another thread of this one, holds the lock.
        IndexNotFound: No directory at ``path``, and not ``create``.
        IndexWriteError: The directory cannot be written (read-only, no permission).
    """
    if path.exists() and not path.is_dir():
        raise RagError(f"{path} is a file, not an index directory")
    if not create and not path.is_dir():
        raise IndexNotFound(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / LOCK, "a")  # noqa: SIM115 - held for the whole block
    except OSError as e:
        raise IndexWriteError(path, f"cannot write the index at {path}: {e.strerror}") from e
    # flock holds per open file, so a second writer in this process is refused like
    # another process's; the held files' identities tell the two apart.
    held = os.fstat(handle.fileno())
    key = (held.st_dev, held.st_ino)
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            with _HELD_LOCK:
                ours = key in _HELD
            by = "another thread of this process" if ours else "another process"
            raise IndexLocked(path, by) from e
        with _HELD_LOCK:
            _HELD.add(key)
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)


# The (device, inode) of each index lock file this process holds (see `lock`).
_HELD: set[tuple[int, int]] = set()
_HELD_LOCK = threading.Lock()


def disk_size(path: Path, manifest: Manifest) -> int:
    """Bytes used by the current generation's files."""
    return diskio.size(path / MANIFEST) + sum(manifest.sizes.values())


@contextlib.contextmanager
def sequential(vectors: np.ndarray | segments.Rows | None) -> Iterator[None]:
    """Read the memory-mapped ``vectors`` with readahead while in the block (a bulk copy)."""
    _advise(vectors, mmap.MADV_SEQUENTIAL)
    try:
        yield
    finally:
        _advise(vectors, mmap.MADV_RANDOM)


def _advise(vectors: np.ndarray | segments.Rows | None, advice: int) -> None:
    """Tell the kernel how the memory-mapped ``vectors`` will be read.

    Searches read scattered rows (re-scoring candidates): with the default readahead every
    row read pulled in 128 KB around it, so 300 queries at 1M chunks filled 1.4 GB of page
    cache with the vectors and thrashed in 2 GB of memory. `MADV_RANDOM` reads only the pages
    asked for; a bulk copy asks for `MADV_SEQUENTIAL` meanwhile.
    """
    for array in vectors.arrays if isinstance(vectors, segments.Rows) else [vectors]:
        handle = getattr(array, "_mmap", None)
        if handle is not None and len(handle):
            handle.madvise(advice)


def _write_faiss(index: Any, file: Path) -> None:
    import faiss

    faiss.write_index(index, str(file))


def _read_npy(file: Path, index_path: Path) -> np.ndarray:
    try:
        return diskio.load_array(file)
    except (OSError, ValueError) as e:
        raise IndexCorrupt(index_path, f"{file.name} is not a readable array") from e


def _read_faiss(file: Path, index_path: Path) -> Any:
    import faiss

    try:
        return faiss.read_index(str(file))
    except RuntimeError as e:
        raise IndexCorrupt(index_path, f"{file.name} is not a readable FAISS index") from e
