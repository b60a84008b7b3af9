"""An index kept in Milvus instead of a directory (``--store``): collections, reads, writes.

``milvus://HOST:PORT[/COLLECTION]`` is a Milvus server (standalone or distributed);
``milvus-lite:PATH.db`` is milvus-lite, which runs inside this process (tests, laptops).
An index named ``C`` (default ``rag``) is two collections, ``C`` (chunks) and ``C_docs``
(articles); `rag.milvus_schema` has their fields.

What `manifest.json` records for a directory (the embedder with its probe vectors, the
chunker and BM25 settings, versions, times) is the JSON property ``rag.manifest`` of ``C``;
it is set when ``C`` is created, after ``C_docs``, so a collection without it is not an index.

Milvus has no transactions. A write deletes an article's old chunks, inserts the new ones,
then replaces its row in ``C_docs``, one batch of articles at a time; removing deletes the
chunks first. The article row is thus written last and removed first: an interrupted run
leaves at worst chunks without an article row (not shown by search), and running the same
command again completes it. pymilvus is imported only when a store is used.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import config
from .db import ChunkRecord, DocRecord
from .errors import BackendUnavailable, IndexCorrupt, InvalidOption, RagError
from .milvus_schema import (
    DENSE_INDEXES,
    chunk_row,
    chunks_schema,
    doc_rows,
    docs_schema,
    in_list,
    literal,
)

COLLECTION = "rag"
MANIFEST_KEY = "rag.manifest"
FORMAT_VERSION = 1
VALID = ("milvus://HOST:PORT[/COLLECTION]", "milvus-lite:PATH.db")
_ROWS = 256  # rows per insert request
_DOCS = 64  # articles per write batch
_IN = 500  # values per `in [...]` filter
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,249}")
_SERVER = re.compile(r"milvus://(?P<host>[^/:?#\s]+):(?P<port>[0-9]{1,5})(?:/(?P<name>[^/?#]*))?")


@dataclass(frozen=True)
class Location:
    """Where a store is: ``uri`` as given, the address pymilvus connects to, the collection,
    the dense index type asked for (``?index=``, used when the index is created)."""

    uri: str
    address: str
    collection: str
    dense_index: str
    lite: Path | None = None


def parse(uri: str) -> Location:
    """Read a ``--store`` value.

    Raises:
        InvalidOption: Not ``milvus://HOST:PORT[/COLLECTION]`` or ``milvus-lite:PATH.db``
            (either optionally followed by ``?index=HNSW`` or ``?index=IVF_SQ8``).
    """
    base, _, query = uri.partition("?")
    dense_index = "HNSW"
    if query:
        key, _, value = query.partition("=")
        if key != "index" or value.upper() not in DENSE_INDEXES:
            raise InvalidOption("store option", query, [f"index={i}" for i in DENSE_INDEXES])
        dense_index = value.upper()
    if base.startswith("milvus-lite:"):
        path = base.removeprefix("milvus-lite:")
        if not path.endswith(".db") or path == ".db":
            raise InvalidOption("store", uri, VALID)
        file = config.expand(path).absolute()
        return Location(uri, str(file), COLLECTION, dense_index, file)
    match = _SERVER.fullmatch(base)
    name = (match["name"] or COLLECTION) if match else ""
    if match is None or not _NAME.fullmatch(name) or not 0 < int(match["port"]) < 65536:
        raise InvalidOption("store", uri, VALID)
    return Location(uri, f"http://{match['host']}:{match['port']}", name, dense_index)


def connect(location: Location) -> Any:
    """A pymilvus client for ``location`` (milvus-lite starts inside this process).

    A server's token (``user:password`` or an API key) is read from ``$RAG_MILVUS_TOKEN``.

    Raises:
        BackendUnavailable: pymilvus (or milvus-lite) is not installed.
        RagError: The server cannot be reached.
    """
    import importlib.util
    import os

    missing = 'serving from Milvus needs the milvus extra: pip install "kornews-rag[milvus]"'
    if importlib.util.find_spec("pymilvus") is None:
        raise BackendUnavailable(missing)
    if location.lite is not None and importlib.util.find_spec("milvus_lite") is None:
        raise BackendUnavailable(missing)
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    # pymilvus logs every failed call with its traceback; rag reports each as one line.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    if location.lite is not None:
        # milvus-lite's server runs in this process and logs a traceback whenever pymilvus
        # asks for a method it lacks (AllocTimestamp, before each query iterator; pymilvus
        # then uses the client's clock).
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        # ... and one whenever it cannot start; rag says why in one line.
        logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
        if location.lite.exists() and not location.lite.is_dir():
            # A database of milvus-lite is a folder: a file of that name is someone else's
            # (milvus-lite failed on it with a traceback; it never wrote to it).
            raise RagError(f"{location.lite} is a file, not a Milvus Lite database")
    token = os.environ.get("RAG_MILVUS_TOKEN", "")
    try:
        if location.lite is not None:
            location.lite.parent.mkdir(parents=True, exist_ok=True)
        return MilvusClient(uri=location.address, token=token, timeout=30)
    except (MilvusException, OSError) as e:
        raise RagError(f"cannot reach Milvus at {location.uri}: {_first_line(e)}") from None


class Store:
    """One index in Milvus: its two collections, through one client."""

    def __init__(self, client: Any, location: Location) -> None:
        self.client = client
        self.location = location
        self.chunks_name = location.collection
        self.docs_name = f"{location.collection}_docs"

    # -- the collections --------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the chunk collection exists (an index, or something else by that name)."""
        return bool(self._call(self.client.has_collection, self.chunks_name))

    def create(self, manifest: dict[str, Any]) -> None:
        """Make both collections, the chunk one last, holding ``manifest``.

        Raises:
            RagError: A collection of either name exists already.
        """
        for name in (self.docs_name, self.chunks_name):
            if self._call(self.client.has_collection, name):
                raise RagError(f"Milvus collection {name!r} exists already ({self.location.uri})")
        dim = int(manifest["embedder"]["dim"])
        docs, docs_index = docs_schema(self.client)
        self._call(
            self.client.create_collection,
            self.docs_name,
            schema=docs,
            index_params=docs_index,
            consistency_level="Strong",
        )
        chunks, chunks_index = chunks_schema(self.client, dim, manifest["dense_index"])
        self._call(
            self.client.create_collection,
            self.chunks_name,
            schema=chunks,
            index_params=chunks_index,
            consistency_level="Strong",  # an add reads what the last one wrote
            properties={MANIFEST_KEY: _dumps(manifest)},
        )

    def drop(self) -> None:
        """Drop both collections (only for an index this process has just created)."""
        for name in (self.chunks_name, self.docs_name):
            self._call(self.client.drop_collection, name)

    def manifest(self) -> dict[str, Any]:
        """The ``rag.manifest`` property, with both collections loaded for search.

        Raises:
            RagError: The collection holds no manifest (it is not a rag index).
            IndexCorrupt: The manifest or the article collection is missing or unreadable.
        """
        described = self._call(self.client.describe_collection, self.chunks_name)
        raw = (described.get("properties") or {}).get(MANIFEST_KEY)
        if raw is None:
            raise RagError(
                f"Milvus collection {self.chunks_name!r} is not a rag index ({self.location.uri})"
            )
        try:
            manifest: dict[str, Any] = json.loads(raw)
            _ = manifest["embedder"]["dim"], manifest["chunker"]["max_tokens"]
        except (ValueError, KeyError, TypeError) as e:
            raise IndexCorrupt(self._where, f"unreadable {MANIFEST_KEY}: {e}") from None
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise RagError(f"the index at {self.location.uri} needs a newer rag")
        if not self._call(self.client.has_collection, self.docs_name):
            raise IndexCorrupt(self._where, f"the collection {self.docs_name!r} is missing")
        for name in (self.docs_name, self.chunks_name):
            self._call(self.client.load_collection, name)
        return manifest

    def touch(self, manifest: dict[str, Any]) -> None:
        """Record the time of a write in the manifest."""
        manifest["updated"] = dt.datetime.now(dt.timezone.utc).isoformat()
        properties = {MANIFEST_KEY: _dumps(manifest)}
        self._call(self.client.alter_collection_properties, self.chunks_name, properties)

    # -- reading ----------------------------------------------------------------------------

    def count(self, documents: bool) -> int:
        """Number of articles (``documents``) or chunks."""
        name, where = (self.docs_name, "part == 0") if documents else (self.chunks_name, "")
        rows = self._call(self.client.query, name, filter=where, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def matching(self, words: list[str]) -> int:
        """Chunks whose BM25 terms hold all of ``words`` (``\\w+`` tokens)."""
        where = " and ".join(f"TEXT_MATCH(terms, {literal(w)})" for w in words)
        rows = self._call(
            self.client.query, self.chunks_name, filter=where, output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"])

    def docs(self, ids: Iterable[str] | None = None, text: bool = False) -> dict[str, DocRecord]:
        """Articles by id, in the order they were added (all when ``ids`` is None)."""
        fields = ["doc_id", "seq", "meta"]
        if ids is None:
            rows = list(self._scan(self.docs_name, "part == 0", fields))
        else:
            rows = self._query_in(self.docs_name, "doc_id", list(ids), fields, "part == 0")
        rows.sort(key=lambda r: (r["seq"], r["doc_id"]))
        texts = self._texts([r["doc_id"] for r in rows]) if text else {}
        return {
            r["doc_id"]: DocRecord.model_validate(
                {**r["meta"], "doc_id": r["doc_id"], "text": texts.get(r["doc_id"], "")}
            )
            for r in rows
        }

    def doc_ids_under(self, path: str) -> list[str]:
        """Ids of the articles read from file ``path`` or from files under folder ``path``."""
        folder = path.rstrip("/")
        where = (
            f"part == 0 and (path == {literal(path)} or "
            f"(path >= {literal(folder + '/')} and path < {literal(folder + '0')}))"
        )
        rows = list(self._scan(self.docs_name, where, ["doc_id", "seq"]))
        return [r["doc_id"] for r in sorted(rows, key=lambda r: (r["seq"], r["doc_id"]))]

    def vectors(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vector of each chunk text hash that is indexed (the embedding cache)."""
        rows = self._query_in(self.chunks_name, "hash", list(set(hashes)), ["hash", "vector"])
        return {r["hash"]: np.asarray(r["vector"], dtype=np.float32) for r in rows}

    def chunks(self, where: str = "") -> list[ChunkRecord]:
        """Every chunk (matching ``where``), by article and position."""
        fields = ["chunk_id", "doc_id", "start", "end", "tokens", "hash", "terms", "text"]
        rows = sorted(self._scan(self.chunks_name, where, fields), key=_chunk_order)
        return [ChunkRecord(**{f: r[f] for f in fields}) for r in rows]

    def chunk_doc_ids(self) -> list[str]:
        """The article id of every chunk (``rag info --check``)."""
        return [r["doc_id"] for r in self._scan(self.chunks_name, "", ["doc_id"])]

    def search(self, requests: list[Any], ranker: Any | None, limit: int) -> list[dict[str, Any]]:
        """Run one search request, or several fused by ``ranker``; hits best first, each with
        ``distance`` and its ``entity`` (chunk fields and vector)."""
        fields = ["chunk_id", "doc_id", "start", "end", "tokens", "hash", "terms", "text"]
        fields.append("vector")
        if ranker is None:
            (request,) = requests
            found = self._call(
                self.client.search,
                self.chunks_name,
                data=request.data,
                anns_field=request.anns_field,
                search_params=request.param,
                filter=request.expr or "",
                limit=limit,
                output_fields=fields,
            )
        else:
            found = self._call(
                self.client.hybrid_search,
                self.chunks_name,
                requests,
                ranker,
                limit=limit,
                output_fields=fields,
            )
        return list(found[0]) if found else []

    # -- writing ----------------------------------------------------------------------------

    def replace(
        self, docs: list[DocRecord], chunks: list[ChunkRecord], vectors: np.ndarray
    ) -> Iterator[int]:
        """Write ``docs`` with their ``chunks`` (row for row with ``vectors``), replacing any
        stored version; yields the number of articles written after each batch."""
        by_doc: dict[str, list[int]] = {}
        for i, c in enumerate(chunks):
            by_doc.setdefault(c.doc_id, []).append(i)
        seq = time.time_ns()
        for start in range(0, len(docs), _DOCS):
            batch = docs[start : start + _DOCS]
            ids = [d.doc_id for d in batch]
            self._delete(self.chunks_name, ids)
            rows = [
                chunk_row(chunks[i], vectors[i], d) for d in batch for i in by_doc.get(d.doc_id, [])
            ]
            self._insert(self.chunks_name, rows)
            self._delete(self.docs_name, ids)  # the article row last: it marks the write done
            rows = [r for n, d in enumerate(batch, seq + start) for r in doc_rows(d, n)]
            self._insert(self.docs_name, rows)
            yield start + len(batch)

    def delete(self, ids: list[str]) -> None:
        """Remove articles and their chunks (the chunks first; see the module docstring)."""
        self._delete(self.chunks_name, ids)
        self._delete(self.docs_name, ids)

    # -- helpers ----------------------------------------------------------------------------

    @property
    def _where(self) -> Path:
        return Path(self.location.uri)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call pymilvus, turning its errors into one-line `RagError`\\ s."""
        from pymilvus.exceptions import MilvusException

        try:
            return method(*args, **kwargs)
        except MilvusException as e:
            raise RagError(f"Milvus at {self.location.uri}: {_first_line(e)}") from None

    def _scan(self, name: str, where: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every row matching ``where``, in pages (a query alone returns at most 16,384)."""
        iterator = self._call(
            self.client.query_iterator, name, batch_size=1000, filter=where, output_fields=fields
        )
        try:
            while page := self._call(iterator.next):
                yield from page
        finally:
            iterator.close()

    def _query_in(
        self, name: str, field: str, values: list[str], fields: list[str], extra: str = ""
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for start in range(0, len(values), _IN):
            where = in_list(field, values[start : start + _IN]) + (f" and {extra}" if extra else "")
            rows += self._call(self.client.query, name, filter=where, output_fields=fields)
        return rows

    def _texts(self, ids: list[str]) -> dict[str, str]:
        parts = self._query_in(self.docs_name, "doc_id", ids, ["doc_id", "part", "text"])
        texts: dict[str, str] = {}
        for row in sorted(parts, key=lambda r: (r["doc_id"], r["part"])):
            texts[row["doc_id"]] = texts.get(row["doc_id"], "") + row["text"]
        return texts

    def _delete(self, name: str, ids: list[str]) -> None:
        for start in range(0, len(ids), _IN):
            self._call(self.client.delete, name, filter=in_list("doc_id", ids[start : start + _IN]))

    def _insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), _ROWS):
            self._call(self.client.insert, name, rows[start : start + _ROWS])


def _chunk_order(row: dict[str, Any]) -> tuple[str, int, int]:
    return row["doc_id"], row["start"], row["end"]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _first_line(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return str(message).strip().splitlines()[0] if str(message).strip() else type(error).__name__
