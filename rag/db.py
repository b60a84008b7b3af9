"""The SQLite file of a segment (or of a format-2/3 generation): documents, chunks (row =
vector row) and outlets.

`Records` reads one file (by row for search hits, in bulk for writes); `rag.writer` writes
them, copying the records it keeps inside SQLite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
