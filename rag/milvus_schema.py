"""What an index in Milvus stores and how: the two collections' fields and indexes, the rows
written for chunks and articles, the BM25 text, and filter expressions (`rag.milvus`).

- ``C``, one row per chunk: ``chunk_id`` (primary key), ``doc_id``, span, ``hash`` (the
  embedding cache key), ``text``; ``vector`` (HNSW or IVF_SQ8, inner product); ``terms``,
  the chunk's Kiwi content morphemes reduced to ``\\w+`` tokens and joined by spaces, which a
  BM25 function turns into the sparse vector ``sparse`` (the standard analyzer splits exactly
  there, so Milvus counts our morphemes, not its own tokens); ``date`` (``YYYYMMDD``, 0 when
  unknown) and ``outlet`` (casefolded) with scalar indexes, for filters.
- ``C_docs``, one row per article: its metadata as JSON, ``path`` for ``rag remove PATH``,
  and its cleaned text (in parts of at most 16,000 characters: a VARCHAR holds 65,535 bytes).
  Milvus needs a vector field in every collection; ``unused`` is a 2-d zero vector.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from .db import ChunkRecord, DocRecord

DENSE_INDEXES = ("HNSW", "IVF_SQ8")
# Dense index settings, common ones and not tuned (no server here): Milvus builds one index
# per sealed segment.
_BUILD = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_SQ8": {"nlist": 1024}}
_SEARCH = {"HNSW": {"ef": 256}, "IVF_SQ8": {"nprobe": 64}}
ID_BYTES = 4096
_TEXT_BYTES = 65535
_PART_CHARS = 16_000  # at most 4 UTF-8 bytes each: a part fits a VARCHAR of 65,535 bytes
_WORD = re.compile(r"\w+")


def docs_schema(client: Any) -> tuple[Any, Any]:
    """The article collection's schema and index parameters."""
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=ID_BYTES + 12)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=ID_BYTES)
    schema.add_field("part", DataType.INT64)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("path", DataType.VARCHAR, max_length=ID_BYTES)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("text", DataType.VARCHAR, max_length=_TEXT_BYTES)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="L2")
    for field in ("doc_id", "part", "path"):
        index.add_index(field, index_type="INVERTED")
    return schema, index


def chunks_schema(client: Any, dim: int, dense_index: str) -> tuple[Any, Any]:
    """The chunk collection's schema (with the BM25 function) and index parameters."""
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=ID_BYTES)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=ID_BYTES)
    for field in ("start", "end", "tokens"):
        schema.add_field(field, DataType.INT64)
    schema.add_field("hash", DataType.VARCHAR, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=_TEXT_BYTES)
    schema.add_field(
        "terms",
        DataType.VARCHAR,
        max_length=_TEXT_BYTES,
        enable_analyzer=True,
        analyzer_params={"type": "standard"},
        enable_match=True,  # TEXT_MATCH counts a term's chunks (document frequencies)
    )
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("date", DataType.INT32)
    schema.add_field("outlet", DataType.VARCHAR, max_length=1024)
    schema.add_function(
        Function(
            name="terms_bm25",
            function_type=FunctionType.BM25,
            input_field_names=["terms"],
            output_field_names=["sparse"],
        )
    )
    index = client.prepare_index_params()
    index.add_index("vector", index_type=dense_index, metric_type="IP", params=_BUILD[dense_index])
    # rag's BM25 settings (`rag.manifest.new_manifest`: k1 1.5, b 0.75).
    index.add_index(
        "sparse",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={"bm25_k1": 1.5, "bm25_b": 0.75},
    )
    for field in ("doc_id", "hash", "date", "outlet"):
        index.add_index(field, index_type="INVERTED")
    return schema, index


def tokens(term: str) -> list[str]:
    """A BM25 term as the standard analyzer will see it: its ``\\w+`` runs, lowercased."""
    return _WORD.findall(term.lower())


def analyzed(terms: Iterable[str]) -> str:
    """Kiwi terms as the text of the ``terms`` field (or a BM25 query)."""
    return " ".join(t for term in terms for t in tokens(term))


def date_code(date: dt.date | None) -> int:
    """``YYYYMMDD`` as a number; 0 for no date (fails every date filter, as locally)."""
    return date.year * 10000 + date.month * 100 + date.day if date else 0


def filter_expression(since: dt.date | None, until: dt.date | None, source: str | None) -> str:
    """The scalar filter of `Index.search`'s ``since``, ``until`` and ``source``."""
    parts = []
    if since is not None:
        parts.append(f"date >= {date_code(since)}")
    if until is not None:
        parts.append(f"date > 0 and date <= {date_code(until)}")
    if source is not None:
        parts.append(f"outlet == {literal(source.casefold())}")
    return " and ".join(parts)


def search_params(manifest: dict[str, Any]) -> dict[str, Any]:
    """The dense search parameters for the recorded index type."""
    return {"metric_type": "IP", "params": _SEARCH[manifest["dense_index"]]}


def chunk_row(chunk: ChunkRecord, vector: np.ndarray, doc: DocRecord) -> dict[str, Any]:
    """The row of ``chunk`` of article ``doc``."""
    return {
        **chunk.model_dump(),
        "terms": analyzed(chunk.terms.split()),
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
        "date": date_code(doc.date),
        "outlet": doc.source.casefold() if doc.source else "",
    }


def doc_rows(doc: DocRecord, seq: int) -> list[dict[str, Any]]:
    """The rows of article ``doc``: its metadata and the first part of its text, then the
    other parts; ``seq`` orders articles as they were added."""
    meta = doc.model_dump(mode="json", exclude={"doc_id", "text"})
    parts = [doc.text[i : i + _PART_CHARS] for i in range(0, len(doc.text), _PART_CHARS)]
    return [
        {
            "pk": f"{n}:{doc.doc_id}",
            "doc_id": doc.doc_id,
            "part": n,
            "seq": seq,
            "path": doc.path or "",
            "meta": meta if n == 0 else {},
            "text": text,
            "unused": [0.0, 0.0],
        }
        for n, text in enumerate(parts or [""])
    ]


# pymilvus reads a collection in pages (`query_iterator`), each filtered on the last primary
# key read, which it quotes without escaping: a doc id (in every primary key) holding " or \
# or a control character breaks every read past the first 1,000 rows, or widens it (with
# the id `x" or pk > "0`, a `rag remove` of its file deleted other folders' articles).
_UNPAGEABLE = re.compile(r'["\\\x00-\x1f\x7f]')
_SUFFIX_BYTES = 12  # a chunk id is the doc id, "#" and the chunk's number


def unstorable(doc_id: str, path: str | None) -> str:
    """Why an article with this doc id and path cannot be stored safely ("" if it can);
    checked before a batch's old chunks are deleted, so a row Milvus would refuse never
    leaves the batch's other articles without chunks."""
    if _UNPAGEABLE.search(doc_id):
        return (
            'a doc id holding ", \\ or a control character, which Milvus reads back '
            "unescaped: give the article another id"
        )
    if len(doc_id.encode()) > ID_BYTES - _SUFFIX_BYTES:
        return f"a doc id longer than {ID_BYTES - _SUFFIX_BYTES:,} bytes"
    if path is not None and len(path.encode()) > ID_BYTES:
        return f"a path longer than {ID_BYTES:,} bytes"
    return ""


def literal(value: str) -> str:
    """``value`` as a string literal of a Milvus filter expression (no injection)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def in_list(field: str, values: list[str]) -> str:
    """``field in [...]`` for ``values``, quoted."""
    return f"{field} in [{', '.join(literal(v) for v in values)}]"
