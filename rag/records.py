"""Typed records passed between pipeline stages: ingest -> chunk -> store -> search."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class Article(BaseModel):
    """One cleaned news article, ready to chunk.

    Attributes:
        key: What identifies the source across runs, so an edit replaces the old version:
            the absolute file path, plus ``#<id>`` or ``:<line>`` for records inside JSON/JSONL.
        doc_id: The id the source gave (a JSONL ``id``); ``None`` lets the index assign one.
        path: The file the article came from (``None`` for records passed in memory).
        text: Cleaned article text (boilerplate removed); chunk spans point into it.
        content_hash: SHA-256 of ``text``; equal hashes mean duplicate articles.
    """

    key: str
    doc_id: str | None = None
    path: str | None = None
    title: str | None = None
    date: dt.date | None = None
    published: dt.datetime | None = None
    source: str | None = None
    reporter: str | None = None
    url: str | None = None
    text: str
    content_hash: str


class Skipped(BaseModel):
    """An input that was not indexed, and why."""

    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


class Chunk(BaseModel):
    """A run of whole sentences from one article, sized for the embedder.

    ``start``/``end`` are character offsets into the article's cleaned text, so
    ``article.text[start:end] == text``.
    """

    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    tokens: int

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.ordinal}"


class Hit(BaseModel):
    """One search result: a chunk, its article's metadata and its score."""

    doc_id: str
    chunk_id: str
    title: str | None
    date: dt.date | None
    source: str | None
    path: str | None
    url: str | None = None
    reporter: str | None = None
    text: str
    start: int
    end: int
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None

    @property
    def byline(self) -> str | None:
        """The article's byline as Korean papers print it ("고민서 기자"), if it names one."""
        return f"{self.reporter} 기자" if self.reporter else None

    @property
    def about(self) -> str:
        """The article's date, outlet and byline, for a person to read ("2023-05-16 ·
        매일경제 · 고민서 기자")."""
        date = self.date.isoformat() if self.date else None
        return " · ".join(x for x in (date, self.source, self.byline) if x)


class IndexReport(BaseModel):
    """What one ``Index.add`` call did."""

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    duplicates: list[Skipped] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    #: Documents removed because their article now repeats another's text (a file edited
    #: to equal another indexed article): their earlier text is in no input any more.
    removed: list[str] = Field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0


class IndexInfo(BaseModel):
    """What `Index.info` reports (and `rag info` prints)."""

    path: str
    documents: int
    chunks: int
    embedder: str
    model_id: str
    dim: int
    size_bytes: int
    created: dt.datetime
    updated: dt.datetime
    first_date: dt.date | None
    last_date: dt.date | None
    sources: dict[str, int]
    rag_version: str
    format_version: int
