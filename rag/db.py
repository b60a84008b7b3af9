"""The SQLite file of an index generation: documents, chunks (row = vector row) and outlets.

`Records` reads it (by row for search hits, in bulk for writes); `write` makes the next
generation's file, copying the records it keeps inside SQLite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel

from .errors import IndexCorrupt
from .records import Article

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
-- For `rag info` (date range, outlets) and `rag remove PATH` without reading every article.
CREATE INDEX documents_date ON documents (date);
CREATE INDEX documents_source ON documents (source);
CREATE INDEX documents_path ON documents (path);
"""
DOC_COLUMNS = tuple(
    "doc_id key path title date published source reporter url content_hash chunks "
    "indexed_at text".split()
)
CHUNK_COLUMNS = ("chunk_id", "doc_id", "start", "end", "tokens", "hash", "terms", "text")


class DocRecord(Article):
    """An indexed article as stored in the ``documents`` table: an `Article` with the id the
    index gave it, its number of chunks and when it was indexed."""

    doc_id: str
    chunks: int
    indexed_at: dt.datetime


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


class Records:
    """Read access to one generation's SQLite file (opened read-only and immutable)."""

    def __init__(self, file: Path, index_path: Path) -> None:
        self.file = file
        self.index_path = index_path
        # A generation's files never change once written: immutable skips SQLite's locking.
        uri = f"{file.resolve().as_uri()}?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as e:
            raise IndexCorrupt(index_path, f"{file.name} is not a readable SQLite file") from e

    def counts(self) -> tuple[int, int]:
        """Numbers of documents and chunks.

        Read from the last rowid, not count(*), which walks the whole table (gigabytes at a
        million chunks); a generation's rows are written once, in order, without gaps.
        """
        sql = (
            "SELECT (SELECT coalesce(max(rowid), 0) FROM documents), "
            "(SELECT coalesce(max(row) + 1, 0) FROM chunks)"
        )
        (docs, chunks), *_ = self._query(sql)
        return docs, chunks

    def chunks(self, rows: Sequence[int]) -> list[ChunkRecord]:
        """The chunks at ``rows``, in that order."""
        sql = f"SELECT row, {_columns(CHUNK_COLUMNS)} FROM chunks WHERE row IN ({{}})"
        found = {
            row: ChunkRecord(**dict(zip(CHUNK_COLUMNS, values, strict=True)))
            for row, *values in self._query_in(sql, [int(r) for r in rows])
        }
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
            rows = self._query(f"SELECT {columns} FROM documents ORDER BY rowid")
        else:
            sql = f"SELECT {columns} FROM documents WHERE doc_id IN ({{}})"
            rows = self._query_in(sql, list(dict.fromkeys(ids)))
        docs = [DocRecord(**dict(zip(DOC_COLUMNS, r, strict=True))) for r in rows]
        return {d.doc_id: d for d in docs}

    def doc_ids_under(self, path: str) -> list[str]:
        """Ids of the documents read from file ``path`` or from files under folder ``path``."""
        folder = path.rstrip("/")
        # Paths under the folder sort from "folder/" to just before "folder0" ("0" follows "/"),
        # a range the path index answers.
        sql = (
            "SELECT doc_id FROM documents WHERE path = ? OR (path >= ? AND path < ?) ORDER BY rowid"
        )
        return [r[0] for r in self._query(sql, [path, folder + "/", folder + "0"])]

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

    def _query_in(self, sql: str, values: list[Any]) -> list[Any]:
        """Run ``sql`` with its ``IN ({})`` filled for ``values``, 500 at a time (SQLite
        limits the number of parameters)."""
        rows = []
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            rows += self._query(sql.format(_marks(part)), part)
        return rows

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise IndexCorrupt(self.index_path, f"{self.file.name}: {e}") from e


class Written(NamedTuple):
    """What `write` wrote, for the rest of the generation."""

    keep: np.ndarray  # the base rows kept, in order
    documents: int
    filters: np.ndarray  # per chunk: date ordinal, outlet code


def write(
    file: Path,
    base: Path | None,
    drop: set[str],
    docs: list[DocRecord],
    chunks: list[ChunkRecord],
    base_filters: np.ndarray | None = None,
) -> Written:
    """Write a generation's SQLite file: the records of ``base`` (the previous generation's
    file) except documents ``drop``, then ``docs`` and ``chunks``.

    The kept records are copied inside SQLite (no Python loop over them); their chunk rows
    are renumbered from 0 and the new chunks follow. When nothing of ``base`` is dropped (new
    articles only) its file is copied as it is and the new records inserted into the copy:
    at a million chunks that takes seconds where copying row by row takes half a minute.
    ``base_filters`` (the previous generation's) then spare reading every chunk's article.
    """
    file.unlink(missing_ok=True)
    if base is not None and not _holds_any(base, drop):
        return _append(file, base, docs, chunks, base_filters)
    with contextlib.closing(sqlite3.connect(file)) as db:
        # No rollback journal: a failed write discards the whole file anyway, and a killed one
        # would leave a records-N.sqlite-journal beside it that no manifest names.
        db.execute("PRAGMA journal_mode=OFF")
        db.executescript(SCHEMA)
        keep = np.zeros(0, dtype=np.int64)
        if base is not None:
            _copy_kept(db, base, drop)
            rows = db.execute("SELECT base_row FROM kept ORDER BY row").fetchall()
            keep = np.array(rows, dtype=np.int64).reshape(-1)
        _insert(db, docs, chunks, len(keep))
        sql = "SELECT DISTINCT source FROM documents WHERE source IS NOT NULL"
        outlets = sorted({s.casefold() for (s,) in db.execute(sql)})
        db.executemany("INSERT INTO outlets VALUES (?, ?)", enumerate(outlets))
        db.commit()
        (documents,) = db.execute("SELECT count(*) FROM documents").fetchone()
        return Written(keep, int(documents), _filters(db))


def _holds_any(file: Path, ids: set[str]) -> bool:
    """Whether the SQLite file holds any of the documents ``ids``."""
    values = list(ids)
    with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)) as db:
        for start in range(0, len(values), 500):
            part = values[start : start + 500]
            sql = f"SELECT 1 FROM documents WHERE doc_id IN ({_marks(part)}) LIMIT 1"
            if db.execute(sql, part).fetchone():
                return True
    return False


def _append(
    file: Path,
    base: Path,
    docs: list[DocRecord],
    chunks: list[ChunkRecord],
    base_filters: np.ndarray | None,
) -> Written:
    """`write` when no record of ``base`` is dropped: a byte copy of it plus the new ones."""
    shutil.copyfile(base, file)  # copy_file_range: no pass through Python
    with contextlib.closing(sqlite3.connect(file)) as db:
        db.execute("PRAGMA journal_mode=OFF")
        (rows,), (documents,) = (
            db.execute("SELECT coalesce(max(row) + 1, 0) FROM chunks").fetchone(),
            db.execute("SELECT coalesce(max(rowid), 0) FROM documents").fetchone(),
        )
        old = dict(db.execute("SELECT name, code FROM outlets"))
        _insert(db, docs, chunks, rows)
        names = sorted(set(old) | {d.source.casefold() for d in docs if d.source})
        if len(names) != len(old):  # codes follow the names' order: renumber them all
            db.execute("DELETE FROM outlets")
            db.executemany("INSERT INTO outlets VALUES (?, ?)", enumerate(names))
        db.commit()
        if base_filters is None or len(base_filters) != rows or len(names) != len(old):
            filters = _filters(db)
        else:
            per_doc = {d.doc_id: _filter(d.date, d.source, old) for d in docs}
            new = np.array([per_doc[c.doc_id] for c in chunks], dtype=np.int32).reshape(-1, 2)
            filters = np.concatenate([base_filters, new])
    return Written(np.arange(rows, dtype=np.int64), int(documents) + len(docs), filters)


def _insert(
    db: sqlite3.Connection, docs: list[DocRecord], chunks: list[ChunkRecord], first: int
) -> None:
    docs_sql = f"INSERT INTO documents ({_columns(DOC_COLUMNS)}) VALUES ({_marks(DOC_COLUMNS)})"
    db.executemany(docs_sql, (_values(d, DOC_COLUMNS) for d in docs))
    chunks_sql = (
        f"INSERT INTO chunks (row, {_columns(CHUNK_COLUMNS)}) VALUES (?, {_marks(CHUNK_COLUMNS)})"
    )
    db.executemany(
        chunks_sql, ((first + i, *_values(c, CHUNK_COLUMNS)) for i, c in enumerate(chunks))
    )


def _filter(
    date: dt.date | str | None, source: str | None, codes: dict[str, int]
) -> tuple[int, int]:
    """An article's date ordinal (-1: none) and outlet code (-1: none) for ``filters``."""
    if isinstance(date, str):
        date = dt.date.fromisoformat(date)
    return (date.toordinal() if date else -1, codes[source.casefold()] if source else -1)


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
        doc_id: _filter(date, source, codes)
        for doc_id, date, source in db.execute("SELECT doc_id, date, source FROM documents")
    }
    rows = [per_doc[d] for (d,) in db.execute("SELECT doc_id FROM chunks ORDER BY row")]
    return np.array(rows, dtype=np.int32).reshape(-1, 2)


def terms(file: Path) -> Iterator[str]:
    """The BM25 terms of every chunk (space-separated), in row order."""
    with contextlib.closing(sqlite3.connect(file)) as db:
        for (t,) in db.execute("SELECT terms FROM chunks ORDER BY row"):
            yield t


def _columns(names: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{n}"' for n in names)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _values(record: BaseModel, names: tuple[str, ...]) -> tuple[Any, ...]:
    data = record.model_dump(mode="json", include=set(names))
    return tuple(data[n] for n in names)
