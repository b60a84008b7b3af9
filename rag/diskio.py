"""Writing an index generation's files safely: free space checked first, a full disk or a
read-only file system turned into one `IndexWriteError`, only generation files ever removed.

Vectors are written with plain ``write`` calls rather than through a writable memory map: a
full disk then fails the call with ``ENOSPC`` instead of killing the process with ``SIGBUS``
when a page of the map cannot be backed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import json
import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import IndexWriteError
from .manifest import GENERATION_FILE

if TYPE_CHECKING:
    from .db import ChunkRecord, DocRecord
    from .manifest import Manifest

# What a write needs besides the data itself: SQLite's empty tables and indexes, BM25's
# vocabulary and parameter files, the manifest.
_FIXED_BYTES = 256 * 1024
# numpy's message for a short write has no errno ("123 requested and 45 written").
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def estimate(
    base: Manifest | None, docs: list[DocRecord], chunks: list[ChunkRecord], dim: int
) -> int:
    """An upper estimate of the bytes the next generation takes: all of ``base``'s files
    (whatever is dropped) plus the new documents' text, chunks, vectors, BM25 postings and
    ANN codes."""
    old = sum(base.sizes.values()) if base is not None else 0
    text = sum(len(d.text.encode()) + 512 for d in docs)
    text += sum(len(c.text.encode()) + len(c.terms.encode()) + 256 for c in chunks)
    postings = sum(len(c.terms.split()) for c in chunks) * 12  # float32 score + int32 row, vocab
    vectors = len(chunks) * (dim * 4 + 8 + dim + 16)  # fp32 row, filters, an SQ8 code and id
    return old + 2 * text + postings + vectors + _FIXED_BYTES


def check_space(path: Path, gen: int, needed: int) -> None:
    """Refuse a write the file system has no room for, before any file is written.

    Raises:
        IndexWriteError: Fewer than ``needed`` bytes are free under ``path``.
    """
    free = shutil.disk_usage(path).free
    if needed > free:
        raise IndexWriteError(
            path,
            f"no space left on device while writing generation {gen} of the index at {path} "
            f"(needs about {_mb(needed)}, {_mb(free)} free); the index was not changed",
        )


@contextlib.contextmanager
def writing(path: Path, file: Path) -> Iterator[None]:
    """Turn a full disk or a read-only file system while writing ``file`` into one
    `IndexWriteError` naming it (the caller removes the partial generation)."""
    try:
        yield
    except (OSError, sqlite3.Error, RuntimeError) as e:
        if no_space(e):
            raise IndexWriteError(
                path, f"no space left on device while writing {file}; the index was not changed"
            ) from e
        if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise IndexWriteError(
                path, f"cannot write {file}: {e.strerror}; the index was not changed"
            ) from e
        raise


def no_space(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or quota) is full, however the library phrased it."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    # SQLite: "database or disk is full"; FAISS: "... (No space left on device)".
    return (
        "disk is full" in text
        or os.strerror(errno.ENOSPC) in text
        or _SHORT_WRITE.search(text) is not None
    )


def write_npy(
    file: Path,
    shape: tuple[int, int],
    blocks: Iterable[np.ndarray],
    tail: np.ndarray,
    prefix: Path | None = None,
) -> None:
    """Write a float32 ``.npy`` of ``shape`` from ``blocks`` then ``tail``, row-major.

    ``prefix``: a float32 ``.npy`` holding exactly the rows ``blocks`` would give; its bytes
    are then copied by the kernel (copy_file_range) and ``blocks`` is not read, unless its
    header differs in length from the new one.
    """
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, header)
    if prefix is not None and _header_bytes(prefix) == len(head.getvalue()):
        shutil.copyfile(prefix, file)
        with open(file, "r+b") as f:
            f.write(head.getvalue())
            f.seek(0, os.SEEK_END)
            written = (f.tell() - len(head.getvalue())) // (4 * shape[1])
            data = np.ascontiguousarray(tail, dtype="<f4")
            f.write(data.reshape(-1).view(np.uint8).data)
            written += len(data)
        if written != shape[0]:
            raise ValueError(f"{file.name}: wrote {written} rows of {shape[0]}")
        return
    written = 0
    with open(file, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for block in itertools.chain(blocks, [tail]):  # one block in memory at a time
            data = np.ascontiguousarray(block, dtype="<f4")
            f.write(data.reshape(-1).view(np.uint8).data)  # the array's buffer, not a copy
            written += len(data)
    if written != shape[0]:
        raise ValueError(f"{file.name}: wrote {written} rows of {shape[0]}")


# numpy parses a .npy header with ast.literal_eval, which CPython 3.11 cannot run in two
# threads at once: one fails with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905; 9 of 611 index opens by 4 threads). Headers are read one at a time.
NPY_HEADERS = threading.Lock()


def load_array(file: Path, mmap: bool = True) -> np.ndarray:
    """``np.load`` of a ``.npy`` file (memory-mapped unless ``mmap`` is false), its header
    parsed under `NPY_HEADERS`."""
    with NPY_HEADERS:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)


def _header_bytes(file: Path) -> int:
    """Where the data of a version 1.0 ``.npy`` starts (-1 for another version)."""
    with open(file, "rb") as f, NPY_HEADERS:
        if np.lib.format.read_magic(f) != (1, 0):
            return -1
        np.lib.format.read_array_header_1_0(f)
        return f.tell()


def write_json(file: Path, data: Any) -> None:
    """Write ``data`` as JSON and fsync it."""
    file.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    fsync(file)


def remove(path: Path, names: Iterable[str]) -> None:
    """Remove the generation files ``names`` (as a manifest or ``pending.json`` lists them)
    from ``path``; any other name is left alone."""
    for name in names:
        match = GENERATION_FILE.fullmatch(name)
        if match is None or match["inner"] is not None:
            continue
        p = path / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def fsync(p: Path) -> None:
    """fsync a file, or a directory and everything in it."""
    for f in sorted(p.iterdir()) if p.is_dir() else []:
        fsync(f)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def size(p: Path) -> int:
    """Size of ``p`` in bytes, -1 if it cannot be read."""
    try:
        return p.stat().st_size
    except OSError:
        return -1


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"
