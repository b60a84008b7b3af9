"""Read articles from text, Markdown, HTML, JSONL and JSON files, or from in-memory records.

Bad input never raises: each unreadable file, line or record becomes a ``Skipped`` with a short
reason, and everything else is still read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rag.clean import ScrapedMeta, clean_html, clean_scraped, parse_byline, parse_datetime
from rag.config import expand
from rag.errors import IngestError
from rag.manifest import MANIFEST
from rag.records import Article, Skipped
from rag.sanitize import clean_field

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, ".jsonl", ".json")

UNDECODABLE = "cannot decode text (not UTF-8 or a detectable Korean encoding)"
_KOREAN_CODECS = ("cp949", "euc_kr", "johab")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
# Bytes that may appear in text; any other byte below 0x20 is a control byte.
_TEXT_CONTROLS = b"\t\n\v\f\r\x1b"
_CONTROL_BYTES = bytes(b for b in range(32) if b not in _TEXT_CONTROLS)

PathsArg = str | Path | Iterable[str | Path]


def iter_files(paths: PathsArg) -> Iterator[Path | Skipped]:
    """List the article files under the given files and folders.

    Folders are walked recursively in sorted name order, skipping hidden entries (names starting
    with ".") and files of unsupported types. A file named explicitly is always considered, but
    one with an unsupported extension, a missing path or a non-regular file gives a ``Skipped``.
    Each file is listed once even when reached twice.

    Args:
        paths: Files and folders, or a single one.

    Yields:
        Absolute resolved paths of supported files, and a ``Skipped`` for each bad path.
    """
    seen: set[Path] = set()
    for given in [paths] if isinstance(paths, (str, Path)) else paths:
        path = expand(given)
        found: Iterable[Path | Skipped]
        try:
            is_dir = path.is_dir()
        except OSError as exc:  # a name the system refuses: article text passed as a path
            # (a str of over 255 bytes) raised, and nothing else of the call was indexed
            yield Skipped(path=str(path), reason=exc.strerror or str(exc))
            continue
        if is_dir and _is_index(path):  # "rag index idx": every file an error
            yield Skipped(path=str(path.resolve()), reason="a rag index, not articles")
            continue
        if is_dir:
            found = _walk(path, visited=set())
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                kind = path.suffix.lower() or "(no extension)"
                supported = " ".join(SUPPORTED_SUFFIXES)
                reason = f"unsupported file type {kind} (supported: {supported})"
                yield Skipped(path=str(path.resolve()), reason=reason)
                continue
            found = [path.resolve()]
        elif path.exists():
            yield Skipped(path=str(path.resolve()), reason="not a regular file or directory")
            continue
        else:
            yield Skipped(path=str(path.resolve()), reason="no such file or directory")
            continue
        for item in found:
            if isinstance(item, Path):
                if item in seen:
                    continue
                seen.add(item)
            yield item


def _walk(directory: Path, visited: set[Path]) -> Iterator[Path | Skipped]:
    real = directory.resolve()
    if real in visited:  # a symlink back up the tree
        return
    visited.add(real)
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        yield Skipped(path=str(real), reason=f"cannot read directory: {exc.strerror or exc}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if _is_index(entry):  # "rag index news --index news/idx": not articles
                continue
            yield from _walk(entry, visited)
        elif entry.is_file() and entry.suffix.lower() in SUPPORTED_SUFFIXES:
            yield entry.resolve()


def _is_index(directory: Path) -> bool:
    """Whether ``directory`` holds a rag index: a `MANIFEST` with its keys."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return False
    try:
        keys = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(keys, dict) and {"format_version", "generation", "embedder"} <= keys.keys()


def load(paths: PathsArg) -> Iterator[Article | Skipped]:
    """Read every article from the given files and folders.

    ``.txt``/``.md`` files hold one scraped article each, cleaned of portal boilerplate;
    ``.html``/``.htm`` pages go through trafilatura and then the same cleaner; ``.jsonl`` holds
    one record per line and ``.json`` an array of records or one record (see
    ``articles_from_records`` for the record fields).

    Args:
        paths: Files and folders, or a single one (see ``iter_files``).

    Yields:
        One ``Article`` per article read and one ``Skipped`` per file, line or record that could
        not be read, in file order.
    """
    for item in iter_files(paths):
        if isinstance(item, Skipped):
            yield item
            continue
        try:
            yield from _load_file(item)
        except IngestError as exc:
            yield Skipped(path=exc.path, reason=exc.reason, line=exc.line)


def articles_from_records(
    records: Iterable[Mapping[str, Any] | Article], origin: str = "<memory>"
) -> Iterator[Article | Skipped]:
    """Turn in-memory records into articles.

    A record has a non-empty string ``text`` and optionally ``id``, ``title``, ``date``,
    ``source``, ``url`` and ``reporter``. ``text`` is cleaned like scraped text; explicit fields
    win over metadata found in it. An unparseable ``date`` is logged and left out. The key is
    ``f"{origin}#{id}"``, or without an id ``f"{origin}:{h}"`` (``h``: a hash of the cleaned
    text), so that a record without an id updates nothing: each text is an article.

    Args:
        records: Dicts, or ready ``Article`` objects (passed through with the hash of their
            text: `_as_stored`).
        origin: Names the source in keys and ``Skipped`` reports.

    Yields:
        An ``Article`` per good record and a ``Skipped`` per bad one.
    """
    seen: dict[str, str] = {}
    for n, record in enumerate(records, start=1):
        if isinstance(record, Article):
            yield _as_stored(record)
        else:
            yield _record_article(record, origin=origin, path=None, item=n, line=None, seen=seen)


def _as_stored(article: Article) -> Article:
    """A ready ``Article`` with its ``content_hash`` the hash of its text: duplicates are
    found by the hash, and two articles given an empty or wrong one were taken for one (the
    second skipped as a duplicate of the first). Its other fields are kept as given (what
    prints them removes terminal escapes; ``--json`` escapes them)."""
    digest = content_hash(article.text)
    if article.content_hash == digest:
        return article
    return article.model_copy(update={"content_hash": digest})


def decode_bytes(data: bytes) -> str | None:
    """Decode file bytes as UTF-8 (with or without BOM), UTF-16/32 with BOM, or CP949/EUC-KR.

    Returns:
        The text, or ``None`` when no supported encoding gives plausible text.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Strict UTF-8 goes first: it is exact, while detection is a guess. Measured with
    # charset-normalizer 3.5: CP949/EUC-KR sentences (40+ bytes) came back as cp949 every time,
    # but the one word "카카오" (6 bytes) came back as big5 and one syllable as big5hkscs, both
    # mojibake, and a file mixing UTF-8 and CP949 as gb18030. So a guess is used only if it is a
    # Korean codec whose result reads as Korean; strict CP949 (a superset of EUC-KR) gets the same
    # check last.
    from charset_normalizer import from_bytes

    guesses = [match.encoding for match in from_bytes(data)]
    for codec in [*(g for g in guesses if g in _KOREAN_CODECS), "cp949"]:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if _reads_as_korean(text):
            logger.debug("decoded as %s (guesses: %s)", codec, guesses[:3])
            return text
    return None


def _reads_as_korean(text: str) -> bool:
    """Mostly Hangul among non-ASCII characters, and next to no control characters."""
    wide = [c for c in text if ord(c) > 127 and not c.isspace()]
    hangul = sum(1 for c in wide if "가" <= c <= "힣" or "ㄱ" <= c <= "ㆎ" or "ᄀ" <= c <= "ᇿ")
    odd = sum(1 for c in text if not c.isprintable() and c not in "\n\r\t")
    return hangul >= 0.5 * len(wide) and odd <= 0.01 * len(text)


def read_text(path: Path) -> str:
    """Read a file as text, whatever its encoding.

    Raises:
        IngestError: The file cannot be read, is empty, binary or undecodable.
    """
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(where, f"cannot read file: {exc.strerror or exc}") from exc
    if not data.strip():
        raise IngestError(where, "empty file")
    if not data.startswith(tuple(bom for bom, _ in _BOMS[1:])):
        sample = data[:8192]
        controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
        if b"\x00" in sample or controls > 0.05 * len(sample):
            raise IngestError(where, "binary file, not text")
    text = decode_bytes(data)
    if text is None:
        text = _mostly_utf8(data)
        if text is None:
            raise IngestError(where, UNDECODABLE)
        bad = text.count("\ufffd")
        logger.warning("%s: %d invalid UTF-8 sequence(s) read as \ufffd", where, bad)
    if not text.strip():
        raise IngestError(where, "empty file")
    return text


# A UTF-8 file with a stray byte (a Latin-1 word pasted in, a character cut at the end) is
# read with each bad byte replaced, rather than lost whole: up to this many per character.
MAX_BAD_SHARE = 0.001
MAX_BAD_ALWAYS = 4


def _mostly_utf8(data: bytes) -> str | None:
    """``data`` as UTF-8 with its few invalid bytes replaced (U+FFFD), or None if they are
    more than a stray few."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return text if bad <= max(MAX_BAD_ALWAYS, MAX_BAD_SHARE * len(text)) else None


def _load_file(path: Path) -> Iterator[Article | Skipped]:
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        cleaned, meta = clean_scraped(text)
        if not cleaned:
            raise IngestError(str(path), "no article text (only page boilerplate)")
        yield _article(key=str(path), path=str(path), text=cleaned, meta=meta)
    elif suffix in HTML_SUFFIXES:
        yield _html_article(path, text)
    elif suffix == ".jsonl":
        yield from _jsonl_articles(path, text)
    else:
        yield from _json_articles(path, text)


def _jsonl_articles(path: Path, text: str) -> Iterator[Article | Skipped]:
    origin = str(path)
    seen: dict[str, str] = {}
    # split("\n"), not splitlines(): JSON strings may hold a raw U+2028, which splitlines() breaks.
    for n, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            yield Skipped(path=origin, reason="not valid JSON", line=n)
            continue
        yield _record_article(record, origin=origin, path=origin, item=None, line=n, seen=seen)


def _json_articles(path: Path, text: str) -> Iterator[Article | Skipped]:
    origin = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(origin, f"not valid JSON: {exc.msg}", line=exc.lineno) from exc
    except (ValueError, RecursionError) as exc:
        raise IngestError(origin, "not valid JSON") from exc
    if isinstance(data, dict):
        yield _record_article(data, origin=origin, path=origin, item=None, line=None, seen={})
    elif isinstance(data, list):
        if not data:
            raise IngestError(origin, "JSON array has no records")
        seen: dict[str, str] = {}
        for n, record in enumerate(data, start=1):
            yield _record_article(record, origin=origin, path=origin, item=n, line=None, seen=seen)
    else:
        raise IngestError(
            origin, f"JSON must be an array of records or one record object, not {_kind(data)}"
        )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _record_article(
    record: object,
    *,
    origin: str,
    path: str | None,
    item: int | None,
    line: int | None,
    seen: dict[str, str],
) -> Article | Skipped:
    """One record from JSONL (``line``), a JSON array or memory (``item``), or a lone object."""
    where = f"line {line}" if line is not None else f"item {item}" if item is not None else ""

    def skipped(reason: str) -> Skipped:
        prefix = f"{where}: " if line is None and where else ""
        return Skipped(path=origin, reason=prefix + reason, line=line)

    if not isinstance(record, Mapping):
        return skipped(f"record is not a JSON object but {_kind(record)}")
    raw_text = record.get("text")
    if not isinstance(raw_text, str) or not raw_text.strip():
        return skipped("record has no 'text'")
    raw_id = record.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
        return skipped("record 'id' must be a string or an integer")
    doc_id = str(raw_id).strip() if raw_id is not None else ""
    if doc_id in seen:
        return skipped(f"duplicate id {doc_id!r} (first at {seen[doc_id]})")
    if doc_id:
        seen[doc_id] = where or "the same file"

    fields = {name: _str_field(record, name, origin, where) for name in _RECORD_FIELDS}
    text, meta = clean_scraped(raw_text, title=fields["title"])
    if not text:
        return skipped("no article text (only page boilerplate)")
    if fields["date"]:
        day, moment = parse_datetime(fields["date"])
        if day is None:
            logger.warning("%s %s: cannot parse date %r; left out", origin, where, fields["date"])
        else:
            meta.date, meta.published = day, moment
    reporter = fields["reporter"]
    meta.title = fields["title"] or meta.title
    meta.source = fields["source"] or meta.source
    meta.reporter = (parse_byline(reporter) or reporter) if reporter else meta.reporter
    if doc_id:
        key = f"{origin}#{doc_id}"
    elif path is None:
        # A record in memory without an id is its text: by its position in the call, the
        # first record of every `Index.add` call was one article, each replacing the last.
        key = f"{origin}:{content_hash(text)[:16]}"
    else:
        position = line if line is not None else item
        key = f"{origin}:{position}" if position is not None else origin
    meta.url = fields["url"]
    return _article(key=key, path=path, text=text, meta=meta, doc_id=doc_id or None)


_RECORD_FIELDS = ("title", "date", "source", "url", "reporter")


def _str_field(record: Mapping[str, Any], name: str, origin: str, where: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        logger.warning("%s %s: field %r is not a string; ignored", origin, where, name)
        return None
    return value.strip() or None


def _article(
    *,
    key: str,
    path: str | None,
    text: str,
    meta: ScrapedMeta,
    doc_id: str | None = None,
) -> Article:
    # Metadata is printed and put in prompts: stored without control characters, one line,
    # bounded (a 5 MB "title" would be repeated in every chunk's header).
    return Article(
        key=key,
        doc_id=doc_id,
        path=path,
        title=clean_field(meta.title),
        date=meta.date,
        published=meta.published,
        source=clean_field(meta.source, limit=100),
        reporter=clean_field(meta.reporter, limit=100),
        url=clean_field(meta.url, limit=2000),
        text=text,
        content_hash=content_hash(text),
    )


def content_hash(text: str) -> str:
    """SHA-256 of an article's cleaned text, hex: equal hashes are duplicate articles."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _html_article(path: Path, html: str) -> Article:
    where = str(path)
    try:
        text, meta = clean_html(html)
    except ImportError as exc:
        raise IngestError(where, f"cannot read HTML: {exc} (pip install trafilatura)") from exc
    except Exception as exc:  # lxml and trafilatura raise many types on broken markup
        raise IngestError(where, f"cannot parse HTML: {exc}") from exc
    if not text:
        raise IngestError(where, "no article text found in HTML")
    return _article(key=where, path=where, text=text, meta=meta)
