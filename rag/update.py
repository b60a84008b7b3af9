"""From inputs to index changes: read, decide what is new, chunk, and embed what is not cached.

`Index.add` runs these steps under the index's write lock and writes the result atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from . import config, ingest
from .chunk import chunk_text, header, retrieval_text
from .db import ChunkRecord, DocRecord
from .embed import Embedder
from .errors import RagError
from .korean import morphemes_batch
from .records import Article, IndexReport, Skipped
from .store import Snapshot

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages are "read", "chunk", "embed" and "write" (and
"cluster", starting or joining one, with ``ray``)."""


class Encode(Protocol):
    """Embeds passages like `Embedder.embed_passages`, calling ``progress(n)`` as it goes."""

    def __call__(self, texts: list[str], *, progress: Callable[[int], None]) -> np.ndarray: ...


Source = str | Path | dict[str, Any] | Article


def collect(
    inputs: Iterable[Source] | Source, report: IndexReport, progress: Progress | None
) -> list[Article]:
    """Read every input into articles; bad ones go to ``report.skipped``."""
    paths, records = split_inputs(inputs)
    results = [*ingest.load(paths), *ingest.articles_from_records(records)]
    return keep_articles(results, report, progress)


def split_inputs(
    inputs: Iterable[Source] | Source,
) -> tuple[list[str | Path], list[dict[str, Any] | Article]]:
    """The inputs that name files or folders, and the in-memory records."""
    if isinstance(inputs, (str, Path, dict, Article)):
        inputs = [inputs]
    elif isinstance(inputs, bytes) or not isinstance(inputs, Iterable):
        # bytes are iterable too: each byte was a rejected record of its own
        raise TypeError(f"inputs are paths, records or a list of them, not {type(inputs).__name__}")
    paths: list[str | Path] = []
    records: list[dict[str, Any] | Article] = []
    for item in inputs:
        (paths if isinstance(item, (str, Path)) else records).append(item)  # type: ignore[arg-type]
    return paths, records


def keep_articles(
    results: list[Article | Skipped], report: IndexReport, progress: Progress | None = None
) -> list[Article]:
    """The articles among ``results``, their fields `printable`; the rest go to
    ``report.skipped``."""
    articles: list[Article] = []
    for i, result in enumerate(results, 1):
        if isinstance(result, Article) and len(result.text) > config.MAX_ARTICLE_CHARS:
            why = (
                f"article of {len(result.text):,} characters, over the limit of "
                f"{config.MAX_ARTICLE_CHARS:,}: split it into articles"
            )
            result = Skipped(path=result.path or result.key, reason=why)
        if isinstance(result, Skipped):
            report.skipped.append(_printable_fields(result))
        else:
            articles.append(_printable_fields(result))
        if progress:
            progress("read", i, len(results))
    return articles


def nothing_indexed(paths: list[Path], report: IndexReport) -> str:
    """Why a run indexed nothing, in one line: inputs rejected, file types ignored."""
    parts = []
    if report.skipped:
        parts.append(f"{_count(len(report.skipped), 'input')} rejected (listed above)")
    ignored = ignored_types(paths)
    if ignored:
        kinds = ", ".join(f"{suffix} {n}" for suffix, n in sorted(ignored.items()))
        supported = " ".join(ingest.SUPPORTED_SUFFIXES)
        parts.append(
            f"{_count(sum(ignored.values()), 'file')} of unsupported types ignored ({kinds}; "
            f"supported: {supported})"
        )
    where = ", ".join(printable(str(p)) for p in paths)
    return f"nothing indexed from {where}: " + ("; ".join(parts) or "no article files found")


def ignored_types(paths: list[Path]) -> Counter[str]:
    """Files under the folders in ``paths`` that indexing passes over for their type, by
    extension (hidden ones aside, as indexing skips them too)."""
    found: Counter[str] = Counter()
    for folder in (p for p in paths if p.is_dir()):
        for _root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                suffix = Path(name).suffix.lower()
                if not name.startswith(".") and suffix not in ingest.SUPPORTED_SUFFIXES:
                    found[printable(suffix) or "(no extension)"] += 1
    return found


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode written as ``\\xNN`` (or ``\\udNNN``).

    A file name with bytes that are not UTF-8 arrives as a str with surrogate escapes; SQLite,
    JSON output and the terminal all refuse those. The escaped form is stable, so `rag remove`
    given the same raw name finds the document again.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the file name's original bytes
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def resolve(
    targets: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    is_doc: Callable[[str], bool],
    under: Callable[[str], list[str]],
    total: int | None = None,
) -> list[str]:
    """The doc ids `rag remove` ``targets`` name, each a doc id or a file or folder (every
    document from it); ``is_doc`` says whether an id is indexed, ``under`` lists the ids of
    the documents read from under a path, ``total`` is how many the index holds (None: a
    path may name them all).

    Raises:
        RagError: A target names nothing; is empty, which would name the working directory
            (`rag remove "$FILE"` with the variable unset), or the root folder (``"$DIR/"``);
            or names both a document and a path holding others (a document "news" and a
            folder news/); or paths name all ``total`` documents, more than one (``"./$DIR"``
            with the variable unset, in the folder indexed).
        TypeError: A target is not a str or a path (bytes, None).
    """
    if isinstance(targets, (str, os.PathLike)):
        targets = [targets]
    elif isinstance(targets, bytes) or not isinstance(targets, Iterable):
        raise TypeError(f"targets are doc ids or paths as str, not {type(targets).__name__}")
    found: list[str] = []
    pathed = False  # whether a path named some: doc ids named one by one are meant
    given_all: list[str] = []
    for given in (os.fspath(t) if isinstance(t, os.PathLike) else t for t in targets):
        given_all.append(given)
        if not isinstance(given, str):  # a Path is a path; bytes or None name nothing
            raise TypeError(f"a target is a doc id or a path as str, not {type(given).__name__}")
        if not given.strip():
            raise RagError("an empty name matches no document; give a doc id or a path")
        target = printable(given)  # stored paths have undecodable bytes escaped
        by_id = [target] if is_doc(target) else []
        path = printable(str(config.expand(target).resolve()))
        if Path(path).parent == Path(path):  # `rag remove "$DIR/"` with the variable unset
            raise RagError(
                f"{given!r} names the root folder, so every document; give a doc id or a path"
            )
        by_path = under(path)
        # Whether or not the folder is still there: once news/ is deleted, `rag remove news`
        # (the usual clean-up) removed the document of other/news.txt instead of news/'s.
        if by_id and by_path and by_path != by_id:
            raise RagError(
                f"{target!r} is both a doc id and the path {path} ({len(by_path)} documents); "
                f"give the path as ./{target} or the full path to remove those"
            )
        ids = by_id or by_path
        if not ids:
            raise RagError(f"no indexed document matches {given!r}")
        found.extend(i for i in ids if i not in found)
        pathed = pathed or not by_id
    if total is not None and total > 1 and pathed and len(found) == total:
        raise RagError(
            f"{', '.join(map(repr, given_all))} would remove all {total:,} documents of the "
            "index; pass --all (everything=True) to empty it"
        )
    return found


RecordT = TypeVar("RecordT", Article, Skipped)


def _printable_fields(record: RecordT) -> RecordT:
    """``record`` with every text field `printable`."""
    fields = {k: v for k, v in dict(record).items() if isinstance(v, str) and printable(v) != v}
    return record.model_copy(update={k: printable(v) for k, v in fields.items()})


def plan(
    docs: dict[str, DocRecord], articles: list[Article], report: IndexReport
) -> list[tuple[Article, str]]:
    """Decide each article's fate against the indexed ``docs``.

    Returns:
        (article, doc_id) pairs to index, new or replacing an older version.
    """
    # An article updates the document its key made: a file's, or a record's id in its file
    # (`rag.ingest`). Not any document of the same id: a record "001" updated the document of
    # news/001.txt, two feeds numbering their records 1, 2, 3 updated each other's (losing
    # one feed's articles), and two such articles edited in one run updated one document
    # twice, which failed every run after.
    olds = _documents_of(docs, articles)
    # A document this run gives new text no longer holds its old text, so that text, now
    # elsewhere (an article moved to archive/ and a new one written under its name; a line
    # inserted above it in a JSONL file keyed by line), is no duplicate of it: it was
    # skipped as one, and so lost from the index.
    replaced = {
        old.doc_id
        for old, a in zip(olds, articles, strict=True)
        if old is not None and old.content_hash != a.content_hash
    }
    by_hash = {d.content_hash: d for d in docs.values() if d.doc_id not in replaced}
    taken = set(docs)
    plan: list[tuple[Article, str]] = []
    planned_hash: dict[str, str] = {}
    for a, old in zip(articles, olds, strict=True):
        if old is not None and _same(old, a):
            report.unchanged.append(old.doc_id)
            continue
        moved = by_hash.get(a.content_hash) if old is None else None
        if moved is not None and a.content_hash not in planned_hash and _vanished(moved):
            # Its file was renamed or moved: the document follows it. Skipped as a duplicate
            # of its old self, the article was lost once the old name was removed.
            old = moved
        twin = planned_hash.get(a.content_hash) or (
            by_hash[a.content_hash].doc_id
            if a.content_hash in by_hash and by_hash[a.content_hash] is not old
            else None
        )
        if twin is not None:
            record = f"record {a.doc_id}: " if a.doc_id else ""
            # A record without an id is named by its line (feed.jsonl:3), as its key does.
            where = a.key if not a.doc_id else a.path or a.key
            reason = f"{record}duplicate of {twin}"
            if old is not None:
                # Its document's text is in no input now (a.txt edited to equal b.txt): it
                # went on being found under a.txt.
                report.removed.append(old.doc_id)
                reason += f"; its earlier text ({old.doc_id}) is removed"
            report.duplicates.append(Skipped(path=where, reason=reason))
            continue
        if old is not None:
            doc_id = old.doc_id
            report.updated.append(doc_id)
        else:
            doc_id = _new_id(a, taken)
            taken.add(doc_id)
            report.added.append(doc_id)
        planned_hash[a.content_hash] = doc_id
        plan.append((a, doc_id))
    return plan


def _documents_of(docs: dict[str, DocRecord], articles: list[Article]) -> list[DocRecord | None]:
    """The indexed document each article updates: one of its key's, each document to one
    article, one of the same text first. Several documents share a key only where ready
    `Article`s shared one; matched by key alone, they were taken for each other's
    duplicates, and each run removed one and added it again under another id."""
    by_key: dict[str, list[DocRecord]] = {}
    for d in docs.values():
        by_key.setdefault(d.key, []).append(d)
    olds: list[DocRecord | None] = [None] * len(articles)
    claimed: set[str] = set()
    for same_text in (True, False):
        for i, a in enumerate(articles):
            if olds[i] is not None:
                continue
            old = next(
                (
                    d
                    for d in by_key.get(a.key, ())
                    if d.doc_id not in claimed and (d.content_hash == a.content_hash) == same_text
                ),
                None,
            )
            if old is not None:
                olds[i] = old
                claimed.add(old.doc_id)
    return olds


def prepare(
    plan: list[tuple[Article, str]],
    embedder: Embedder,
    chunker: dict[str, Any],
    progress: Progress | None,
) -> tuple[list[DocRecord], list[ChunkRecord], list[str]]:
    """Chunk the planned articles; returns their records and each chunk's retrieval text."""
    return assemble(plan, chunk_articles(plan, embedder.count_tokens, chunker, progress))


def chunk_articles(
    plan: list[tuple[Article, str]],
    count_tokens: Callable[[str], int],
    chunker: dict[str, Any],
    progress: Progress | None = None,
) -> list[tuple[list[ChunkRecord], list[str]]]:
    """Each planned article's chunk records, with their BM25 terms, and retrieval texts."""
    max_tokens = int(chunker["max_tokens"])
    overlap = int(chunker["overlap_sentences"])
    out: list[tuple[list[ChunkRecord], list[str]]] = []
    for i, (a, doc_id) in enumerate(plan, 1):
        head = header(a.title, a.date)
        records: list[ChunkRecord] = []
        texts: list[str] = []
        for piece in chunk_text(doc_id, a.text, count_tokens, max_tokens, head, overlap):
            text = retrieval_text(head, piece.text)
            texts.append(text)
            records.append(
                ChunkRecord(
                    chunk_id=piece.chunk_id,
                    doc_id=doc_id,
                    start=piece.start,
                    end=piece.end,
                    tokens=piece.tokens,
                    hash=hashlib.sha256(text.encode()).hexdigest(),
                    terms="",
                    text=piece.text,
                )
            )
        out.append((records, texts))
        if progress:
            progress("chunk", i, len(plan))
    chunks = [record for records, _ in out for record in records]
    texts = [text for _, texts in out for text in texts]
    for record, terms in zip(chunks, morphemes_batch(texts), strict=True):
        record.terms = " ".join(terms)
    return out


def assemble(
    plan: list[tuple[Article, str]], pieces: list[tuple[list[ChunkRecord], list[str]]]
) -> tuple[list[DocRecord], list[ChunkRecord], list[str]]:
    """The document records of the planned articles, and all their chunks and texts in order."""
    now = dt.datetime.now(dt.timezone.utc)
    docs: list[DocRecord] = []
    chunks: list[ChunkRecord] = []
    texts: list[str] = []
    for (a, doc_id), (records, retrieval_texts) in zip(plan, pieces, strict=True):
        docs.append(_doc_record(a, doc_id, len(records), now))
        chunks.extend(records)
        texts.extend(retrieval_texts)
    return docs, chunks, texts


def embed(
    chunks: list[ChunkRecord],
    texts: list[str],
    cached: Callable[[list[str]], dict[str, np.ndarray]],
    embedder: Embedder,
    report: IndexReport,
    progress: Progress | None,
    encode: Encode | None = None,
) -> np.ndarray:
    """Vectors for ``chunks``, embedding only texts not already in the index.

    The cache key is the hash of the retrieval text, so the unchanged chunks of an edited
    article keep their vectors; ``cached`` returns the index's vectors of those of the given
    hashes it holds (`cached_vectors` for a directory). ``encode`` embeds the rest (default:
    ``embedder.embed_passages``; `rag.distributed` passes one that runs on a Ray cluster).
    """
    found = cached([c.hash for c in chunks])
    vectors = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    todo = []
    for i, c in enumerate(chunks):
        if c.hash in found:
            vectors[i] = found[c.hash]
        else:
            todo.append(i)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embed", done, len(todo))

    if progress:
        progress("embed", 0, len(todo))
    if todo:
        encode = encode or embedder.embed_passages
        vectors[todo] = encode([texts[i] for i in todo], progress=tick)
    report.chunks_embedded = len(todo)
    report.chunks_reused = len(chunks) - len(todo)
    return vectors


def cached_vectors(indexed: Snapshot) -> Callable[[list[str]], dict[str, np.ndarray]]:
    """`embed`'s cache over a directory index's generation."""

    def lookup(hashes: list[str]) -> dict[str, np.ndarray]:
        rows = indexed.records.chunk_hashes()
        return {h: indexed.vectors[rows[h]] for h in hashes if h in rows}

    return lookup


# What an article is: every field but the key it is matched by, the id the index assigned
# and its text (its content hash stands for it). Derived, so that a field added to `Article`
# is compared too: a hand-written list missed the byline, then the publish time, and an
# article changed in either alone stayed "unchanged".
_COMPARED = tuple(f for f in Article.model_fields if f not in {"key", "doc_id", "text"})


def _vanished(doc: DocRecord) -> bool:
    """Whether the file ``doc`` was read from is gone (not an article given in memory)."""
    return doc.path is not None and not os.path.lexists(doc.path)


def _same(old: DocRecord, a: Article) -> bool:
    return all(getattr(old, f) == getattr(a, f) for f in _COMPARED)


def _new_id(a: Article, taken: set[str]) -> str:
    """The source's id, else the file name stem; a hash of the key keeps it unique."""
    if a.doc_id and a.doc_id not in taken:
        return a.doc_id
    base = a.doc_id or (Path(a.path).stem if a.path else "doc")
    if base not in taken and not a.doc_id:
        return base
    seed, n = a.key, 0
    while (doc_id := f"{base}-{hashlib.sha256(seed.encode()).hexdigest()[:8]}") in taken:
        n += 1  # articles of one key (ready `Article`s): the hash alone repeats
        seed = f"{a.key}#{n}"
    return doc_id


def _doc_record(a: Article, doc_id: str, n_chunks: int, now: dt.datetime) -> DocRecord:
    fields = a.model_dump(exclude={"doc_id"})
    return DocRecord(**fields, doc_id=doc_id, chunks=n_chunks, indexed_at=now)
